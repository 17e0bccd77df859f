"""Search spaces: the shipped YAML files, validation errors that name the key, grids, planning, and the Optuna
define-by-run function that only samples the ensemble sizes that fit."""

from __future__ import annotations

import math

import pytest

from tuneall.core.budget import Budget, max_k
from tuneall.core.errors import BudgetError, ConfigError, TuneallError
from tuneall.planning.factory import Allocation, Infeasible, make_trial_plan, max_feasible_k
from tuneall.models import param_count
from tuneall.planning.points import plan_space, point_to_allocation
from tuneall.tuning.define_by_run import DefineByRun
from tuneall.planning.space import AXES, SPACES_DIR, Choice, Range, grid, load_space, parse_space, with_fixed

SHIPPED = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def test_shipped_spaces_exist():
    assert {"paper", "wide", "tuned", "data"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_load_each_shipped_space(name):
    by_name = load_space(name)
    by_path = load_space(SPACES_DIR / f"{name}.yaml")
    assert by_name.name == by_path.name == name
    assert by_name.families and all(isinstance(f, str) for f in by_name.families)
    assert set(by_name.axes) == set(AXES)
    assert by_name.source == (SPACES_DIR / f"{name}.yaml").read_text()
    assert len(grid(by_name)) >= 1


def test_default_space_is_paper():
    assert load_space().name == "paper"
    assert load_space(None).name == "paper"


@pytest.mark.parametrize("name,count",
                         [("paper", 5 * 6), ("wide", 6 * 6), ("tuned", 3 * 4 * 5 * 3), ("data", 3 * 3 * 4)])
def test_grid_point_counts(name, count):
    pts = grid(load_space(name))
    assert len(pts) == count
    assert all(set(p) == {"family", *AXES} for p in pts)
    assert len({tuple(sorted(p.items())) for p in pts}) == count  # no duplicates


def test_paper_grid_values():
    sp = load_space("paper")
    pts = grid(sp)
    assert sorted({p["width"] for p in pts}) == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert sorted({p["k"] for p in pts}) == [1, 2, 3, 4, 6, 8]
    assert {p["depth"] for p in pts} == {None}
    assert {(p["lr"], p["momentum"], p["batch_size"], p["data_fraction"]) for p in pts} == {(0.05, 0.9, 128, 1.0)}


def test_range_grids():
    sp = load_space("wide")
    assert sp.axes["k"] == Range(1, 16, False, True)
    assert sp.axes["k"].grid(6) == [1, 4, 7, 10, 13, 16]
    widths = sp.axes["width"].grid(6)
    assert widths[0] == 0.25 and widths[-1] == 4.0 and len(widths) == 6
    ratios = [b / a for a, b in zip(widths, widths[1:])]
    assert all(r == pytest.approx(16 ** (1 / 5), rel=1e-5) for r in ratios)  # log-spaced
    assert Range(1, 3, integer=True).grid(5) == [1, 2, 3]  # fewer integers than points: all of them
    assert Range(0.0, 1.0).grid(3) == [0.0, 0.5, 1.0]


# ----------------------------------------------------------------------------------------------------------------
# Malformed files


def _write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


BAD_SPACES = [
    # (yaml text, substrings the message must contain)
    ("families: [cnn3]\nwidht: [1, 2]\n", ["widht"]),
    ("families: [cnn3]\nwidth: abc\n", ["width", "abc"]),
    ('families: [cnn3]\nwidth: [1, "abc"]\n', ["width", "abc"]),
    ("families: [cnn3]\nwidth: {low: 2, high: 1}\n", ["width", "empty range"]),
    ("families: [cnn3]\nk: {low: 8, high: 2}\n", ["'k'", "empty range"]),
    ("families: [cnn3]\nk: 0\n", ["'k'", ">= 1"]),
    ("families: [cnn3]\nk: [1, 0]\n", ["'k'"]),
    ("families: [cnn3]\nk: 1.5\n", ["'k'", "integer"]),
    ("families: [cnn3]\nk: []\n", ["'k'", "empty"]),
    ("families: [cnn3]\ndata_fraction: 1.5\n", ["data_fraction", "1.5"]),
    ("families: [cnn3]\ndata_fraction: 0\n", ["data_fraction"]),
    ("families: [cnn3]\nlr: 0\n", ["lr"]),
    ("families: [cnn3]\nlr: {low: 0, high: 1, log: true}\n", ["lr"]),
    ("families: [cnn3]\nlr: {low: 0.1, high: 1, log: maybe}\n", ["lr", "log"]),
    ("families: [cnn3]\nlr: {low: 0.1}\n", ["lr", "high"]),
    ("families: [cnn3]\nlr: {low: 0.1, high: 1, step: 2}\n", ["lr", "step"]),
    ("families: [cnn3]\nmomentum: -0.5\n", ["momentum"]),
    ("families: [cnn3]\nbatch_size: 0\n", ["batch_size"]),
    ("families: [cnn3]\nwidth: .nan\n", ["width"]),
    ("families: [cnn3]\nwidth: true\n", ["width"]),
    ("families: [cnn3]\ndepth: 0\n", ["depth"]),
    ("families: [cnn3]\ngrid_points: 0\n", ["grid_points"]),
    ("families: []\n", ["families"]),
    ("families: [cnn3, 5]\n", ["families"]),
    ("width: [1, 2]\nk: [1, 2]\n", ["missing", "families"]),
    ("- families\n- cnn3\n", ["mapping"]),
    ("", ["mapping"]),
    ("families: [cnn3]\nper_family: {wrn: {width: [1]}}\n", ["per_family", "wrn"]),
    ("families: [cnn3]\nper_family: {cnn3: {lr: [1]}}\n", ["per_family"]),
]


@pytest.mark.parametrize("text,needles", BAD_SPACES, ids=[t.replace("\n", " | ")[:60] for t, _ in BAD_SPACES])
def test_malformed_space_names_the_key(tmp_path, text, needles):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_space(path)
    msg = str(exc.value)
    for needle in needles:
        assert needle in msg, (needle, msg)
    assert "\n" not in msg  # one line, fit for the CLI


def test_unknown_family(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_space(_write(tmp_path, "families: [cnn3, bogusnet]\n"))
    assert "bogusnet" in str(exc.value)
    assert "cnn3" in str(exc.value)  # lists the valid families


def test_unknown_family_message_names_the_key(tmp_path):
    # Regression: the message used to be only models.get_family's, without the key.
    with pytest.raises(ConfigError, match="families"):
        load_space(_write(tmp_path, "families: [bogusnet]\n"))


def test_invalid_yaml_syntax(tmp_path):
    path = _write(tmp_path, "families: [cnn3\nwidth: {low: 1\n")
    with pytest.raises(ConfigError) as exc:
        load_space(path)
    assert "invalid YAML" in str(exc.value)
    assert "line" in str(exc.value)


def test_missing_space_file_lists_shipped(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_space(tmp_path / "nope.yaml")
    assert "not found" in str(exc.value) and "paper" in str(exc.value)
    with pytest.raises(ConfigError, match="not found"):
        load_space("no_such_space_name")


def test_per_family_not_a_mapping(tmp_path):
    # Regression: used to raise AttributeError ('list' object has no attribute 'items').
    with pytest.raises(ConfigError, match="per_family"):
        load_space(_write(tmp_path, "families: [cnn3]\nper_family: [cnn3]\n"))


def test_space_path_is_a_directory(tmp_path):
    # Regression: a directory used to reach read_text() and raise IsADirectoryError.
    with pytest.raises(ConfigError, match="not found"):
        load_space(tmp_path)


def test_space_file_not_utf8(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00families: [cnn3]\n")
    # Regression: used to raise UnicodeDecodeError.
    with pytest.raises(ConfigError, match="UTF-8"):
        load_space(path)


def test_per_family_overrides():
    sp = parse_space({"families": ["cnn3", "wrn"], "width": [1, 2],
                      "per_family": {"wrn": {"width": [1], "depth": [16]}}})
    assert sp.axis("width", "cnn3") == Choice((1, 2))
    assert sp.axis("width", "wrn") == Choice((1,))
    assert sp.axis("depth", "wrn") == Choice((16,))
    pts = grid(sp)
    assert len([p for p in pts if p["family"] == "cnn3"]) == 2
    assert [(p["width"], p["depth"]) for p in pts if p["family"] == "wrn"] == [(1, 16)]


def test_with_fixed():
    sp = with_fixed(load_space("tuned"), lr=0.1, batch_size=64)
    assert sp.axes["lr"] == Choice((0.1,)) and sp.axes["batch_size"] == Choice((64,))
    assert len(grid(sp)) == 3 * 4
    with pytest.raises(ConfigError, match="lr"):
        with_fixed(sp, lr=-1)
    with pytest.raises(ConfigError, match="bogus"):
        with_fixed(sp, bogus=1)


# ----------------------------------------------------------------------------------------------------------------
# plan_space

P = {w: param_count("cnn3", w, 3, 3, 10, 2) for w in (0.25, 0.5, 1.0, 2.0, 4.0)}  # CIFAR-10


def test_plan_space_splits_feasible_and_infeasible():
    b = Budget(3e7)
    feasible, infeasible = plan_space(load_space("paper"), b, "cifar10")
    ks = (1, 2, 3, 4, 6, 8)
    expected = {(w, k) for w in P for k in ks if k <= max_k(b, P[w])}
    assert {(r.width, r.k) for r in feasible.itertuples()} == expected
    assert {(r.width, r.k) for r in infeasible.itertuples()} == {(w, k) for w in P for k in ks} - expected
    assert len(feasible) == 6 + 6 + 5 + 1 + 0 == 18
    assert len(infeasible) == 12
    assert (feasible["spent"] <= 3e7).all()
    assert (feasible["steps"] >= 50).all()
    for r in feasible.itertuples():
        assert r.params_per_member == P[r.width]
        assert r.steps == 30_000_000 // (r.k * P[r.width])
    for r in infeasible.itertuples():
        assert r.min_budget == r.k * P[r.width] * 50
        assert r.min_budget > 3e7
        assert "smallest feasible budget" in r.reason


def test_plan_space_nothing_feasible_names_smallest_budget():
    with pytest.raises(BudgetError) as exc:
        plan_space(load_space("paper"), Budget(1e5), "cifar10")
    msg = str(exc.value)
    assert "smallest feasible budget" in msg
    need = P[0.25] * 50
    assert f"{need:.4g}" in msg  # cnn3 w=0.25 k=1
    assert "w=0.25 k=1" in msg
    # ... and at that budget exactly one allocation is feasible.
    feasible, _ = plan_space(load_space("paper"), Budget(need), "cifar10")
    assert [(r.width, r.k) for r in feasible.itertuples()] == [(0.25, 1)]


def test_plan_space_invalid_depth_is_infeasible_not_fatal():
    sp = parse_space({"families": ["cnn3"], "width": 1.0, "depth": [3, 9], "k": 1})
    feasible, infeasible = plan_space(sp, Budget(1e9), "cifar10")
    assert list(feasible["depth"]) == [3]
    assert list(infeasible["depth"]) == [9]
    assert math.isnan(infeasible["min_budget"].iloc[0])


# ----------------------------------------------------------------------------------------------------------------
# DefineByRun with a real Optuna study


def _ask_points(space, budget, dataset, n, sampler):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler, direction="maximize")  # infeasible points score 0
    dbr = DefineByRun(space, budget, dataset)
    points = []
    for _ in range(n):
        trial = study.ask()
        point = dbr(trial)
        points.append(point)
        alloc, train = point_to_allocation(point)
        try:
            value = float(make_trial_plan(alloc, budget, dataset, train).steps)
        except Infeasible:
            value = 0.0
        study.tell(trial, value)
    return points


@pytest.mark.parametrize("sampler_name", ["tpe", "random"])
def test_define_by_run_only_feasible_k(sampler_name):
    import optuna

    sampler = (optuna.samplers.TPESampler(seed=0, n_startup_trials=10) if sampler_name == "tpe"
               else optuna.samplers.RandomSampler(seed=0))
    b = Budget(3e7)  # on CIFAR-10: w=0.25/0.5 fit every k, w=1 k<=6, w=2 only k=1, w=4 not even k=1
    points = _ask_points(load_space("paper"), b, "cifar10", 50, sampler)
    n_fit = n_nofit = 0
    for p in points:
        alloc, train = point_to_allocation(p)
        assert p["k"] in (1, 2, 3, 4, 6, 8)
        assert p["width"] in P
        if max_feasible_k(Allocation("cnn3", alloc.width), b, "cifar10", train) >= 1:
            n_fit += 1
            plan = make_trial_plan(alloc, b, "cifar10", train)  # must not raise Infeasible
            assert plan.spent <= b.value
        else:
            n_nofit += 1
            assert p["width"] == 4.0
    assert n_fit >= 25 and n_fit + n_nofit == 50
    widths = {p["width"] for p in points}
    assert len(widths) >= 3  # the sampler explores the width axis
    assert widths & {1.0, 2.0}  # ... including widths where only some k fit


def test_define_by_run_range_k_and_continuous_width():
    import optuna

    b = Budget(3e7)
    sp = load_space("wide")
    points = _ask_points(sp, b, "cifar10", 30, optuna.samplers.RandomSampler(seed=1))
    for p in points:
        alloc, train = point_to_allocation(p)
        assert 0.25 <= p["width"] <= 4.0 and 1 <= p["k"] <= 16
        kmax = max_feasible_k(Allocation("cnn3", alloc.width), b, "cifar10", train)
        if kmax >= 1:
            assert p["k"] <= kmax
            make_trial_plan(alloc, b, "cifar10", train)
    assert len({p["k"] for p in points}) > 1


def test_define_by_run_flops_unit_batch_size_matters():
    import optuna

    b = Budget(5e13, unit="flops")
    points = _ask_points(load_space("tuned"), b, "cifar10", 30, optuna.samplers.RandomSampler(seed=2))
    for p in points:
        alloc, train = point_to_allocation(p)
        if max_feasible_k(Allocation("cnn3", alloc.width), b, "cifar10", train) >= 1:
            make_trial_plan(alloc, b, "cifar10", train)
    assert len({p["batch_size"] for p in points}) > 1


def test_errors_are_tuneall_errors():
    assert issubclass(ConfigError, TuneallError)
