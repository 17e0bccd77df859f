"""Graded findings: the verdict helper on constructed effects, effects paired over seeds on constructed cells, the
hold-out statement (fit beats / loses to persistence), the README's generated block, and seed 003's subset per
seed."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuneall.reporting.analysis import contrast, paired_difference, repeat_values
from tuneall.reporting.grading import (NOT_REPRODUCED, REPRODUCED, VERDICT_COLUMNS, WEAK, combined, effect_text, verdict,
                             verdict_line, weakest)
from tuneall.reporting.powerlaw import fit_beats_persistence, holdout_statement

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --- the verdict helper ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("effect, se, n, direction, expected", [
    (0.0103, 0.0022, 3, "greater", REPRODUCED),  # seed 003 at the largest budget: 4.7 SE
    (0.0033, 0.0048, 3, "greater", WEAK),  # seed 000's crossover margin: right sign, inside noise
    (-0.043, 0.0356, 3, "less", WEAK),  # a claim that the effect is negative, within noise
    (-0.065, 0.049, 3, "greater", NOT_REPRODUCED),  # wrong sign
    (0.02, math.nan, 1, "greater", WEAK),  # one seed: no noise estimate, never REPRODUCED
])
def test_verdict_records_grade_the_effect(effect, se, n, direction, expected):
    v = verdict("claim", effect, se, n, direction)
    assert list(v) == VERDICT_COLUMNS
    assert v["verdict"] == expected and v["n"] == n and v["direction"] == direction
    line = verdict_line(v)
    assert line.startswith(f"**{expected}**: claim (") and f"{n} seeds" in line
    assert ("one seed" in line) == (n < 2)


def test_effect_text_in_points_with_the_ratio_to_its_se():
    assert effect_text(0.0103, 0.0022) == "+1.03 ± 0.22 pts, 4.7 SE"
    assert effect_text(-0.043, 0.0356) == "-4.30 ± 3.56 pts, 1.2 SE"
    assert effect_text(0.02, math.nan) == "+2.00 ± ? pts"
    assert effect_text(0.01, 0.0) == "+1.00 ± 0.00 pts, SE 0"
    assert effect_text(math.nan, 0.01) == "n/a"


def test_weakest_and_combined_grade_a_claim_by_its_weakest_part():
    assert weakest([REPRODUCED, WEAK]) == WEAK
    assert weakest([REPRODUCED, NOT_REPRODUCED, WEAK]) == NOT_REPRODUCED
    assert weakest([REPRODUCED]) == REPRODUCED
    with pytest.raises(ValueError):
        weakest([])
    with pytest.raises(ValueError):
        weakest(["PARTLY"])  # no hand-made grade gets through
    parts = [verdict("small end", 0.10, 0.04, 3), verdict("large end", 0.003, 0.006, 3)]
    c = combined("crossover", parts)
    assert c["verdict"] == WEAK and c["claim"] == "crossover" and c["effect"] == 0.003
    assert c["basis"].startswith("weakest of 2 parts")


# --- effects paired over seeds on constructed cells -------------------------------------------------------------------

def _cells(a: list[float], b: list[float], budget: float = 1e6) -> pd.DataFrame:
    rows = []
    for width, vals in ((0.5, a), (1.0, b)):
        for r, acc in enumerate(vals):
            rows.append({"family": "cnn3", "width": width, "depth": 3, "k": 1, "data_fraction": 1.0, "design": None,
                         "lr": 0.05, "momentum": 0.9, "batch_size": 128, "budget": budget, "rule": "mean",
                         "repeat": r, "status": "ok", "ensemble_acc": acc})
    return pd.DataFrame(rows)


def test_paired_difference_is_the_mean_and_se_of_per_seed_differences():
    a, b = [0.90, 0.80, 0.85], [0.88, 0.77, 0.84]  # seed noise (0.05) far above the difference (0.02)
    cells = _cells(a, b)
    effect, se, n = paired_difference(cells, {"width": 0.5, "budget": 1e6, "rule": "mean"},
                                      {"width": 1.0, "budget": 1e6, "rule": "mean"})
    d = np.subtract(a, b)
    assert n == 3 and effect == pytest.approx(d.mean()) and se == pytest.approx(d.std(ddof=1) / math.sqrt(3))
    # Pairing removes the shared seed noise: the unpaired SE would be ~0.04 and call this noise.
    assert verdict("a beats b", effect, se, n)["verdict"] == REPRODUCED


def test_contrast_weights_and_missing_repeats_and_one_seed():
    cells = _cells([0.9, 0.8, 0.7], [0.5, 0.6, 0.7])
    e, se, n = contrast(cells, [(0.5, {"width": 0.5}), (0.5, {"width": 1.0})])
    assert n == 3 and e == pytest.approx(0.7)
    one = cells[cells["repeat"] == 0]
    e, se, n = paired_difference(one, {"width": 0.5}, {"width": 1.0})
    assert n == 1 and e == pytest.approx(0.4) and math.isnan(se)
    assert verdict("x", e, se, n)["verdict"] == WEAK  # one seed is never REPRODUCED
    assert list(repeat_values(cells, {"width": 1.0, "design": float("nan")}).index) == [0, 1, 2]
    with pytest.raises(KeyError, match="no successful cell"):
        repeat_values(cells, {"width": 2.0})
    with pytest.raises(KeyError, match="2 cells match"):
        repeat_values(cells, {"k": 1})


# --- the hold-out statement -------------------------------------------------------------------------------------------

def _holdout(err: float, persistence: float, inside: bool = True) -> pd.DataFrame:
    return pd.DataFrame([{"class": "best", "held_out_budget": 6e10, "fitted_on": 4, "predicted_acc": 0.97 + err,
                          "acc_lo": 0.96, "acc_hi": 0.99, "observed_acc": 0.97, "abs_error": err,
                          "inside_band": inside, "persistence_abs_error": persistence,
                          "p_fit_beats_persistence": 0.25}])


def test_holdout_statement_says_whether_the_fit_beat_persistence():
    beat, lost = _holdout(0.0050, 0.0090), _holdout(0.0130, 0.0083, inside=False)
    assert fit_beats_persistence(beat) is True and fit_beats_persistence(lost) is False
    assert fit_beats_persistence(pd.DataFrame()) is None
    assert fit_beats_persistence(_holdout(0.01, 0.01)) is False  # a tie is not a win
    s = holdout_statement(beat)
    assert "BEATS persistence" in s and "error 0.0050 against 0.0090" in s and "inside the band" in s
    s = holdout_statement(lost)
    assert "LOSES to persistence" in s and "0.0130 against 0.0083" in s and "outside the band" in s
    assert "the fit wins in 25% of seed resamples" in s
    assert "seed resamples" not in holdout_statement(_holdout(0.013, 0.008).drop(columns="p_fit_beats_persistence"))
    assert "untested" in holdout_statement(pd.DataFrame())


def test_sweep_summary_states_the_holdout_before_any_extrapolated_allocation(tmp_path):
    from tuneall.sweeping.report import _summary

    t = {k: pd.DataFrame() for k in ("crossover_budgets", "crossover_curves", "est", "switchover_map", "optimal_k",
                                     "powerlaw_fits", "predicted_switchover", "predicted_best_allocation")}
    t["holdout"] = _holdout(0.0130, 0.0083)
    meta = {"config": {"unit": "flops", "min_steps": 1, "dataset": "digits", "seeds": 3, "rules": ["mean"]},
            "sweep": {"budgets": [1e9, 1e10], "member_steps_trained": 1, "member_steps_largest_budget": 1,
                      "member_steps_without_reuse": 1, "jobs": 1, "reuse_note": "anytime reuse", "wall_time_s": 1.0}}
    text = _summary(tmp_path, meta, t, [])
    assert "LOSES to persistence" in text
    assert text.index("LOSES to persistence") < text.index("Predicted switchover") < text.index(
        "Predicted best allocation")
    assert "| fit_beats_persistence |" in text and "| False |" in text


# --- results/README.md's generated block ------------------------------------------------------------------------------

def test_results_readme_block_lists_every_verdict_and_every_holdout(tmp_path):
    mod = _example("results_readme")
    seeds = {"000": "a", "002": "b"}
    for name, (err, pers), v in (("a", (0.005, 0.009), verdict("claim a", 0.01, 0.002, 5)),
                                 ("b", (0.013, 0.0083), verdict("claim | b", 0.002, 0.004, 3))):
        (tmp_path / name).mkdir()
        pd.DataFrame([v]).to_csv(tmp_path / name / "verdicts.csv", index=False)
        _holdout(err, pers).to_csv(tmp_path / name / "holdout.csv", index=False)
    block = mod.graded_block(tmp_path, seeds)
    assert block.startswith(mod.BEGIN) and block.endswith(mod.END)
    assert "| 000 | claim a | +1.00 ± 0.20 pts, 5.0 SE | 5 | **REPRODUCED** |" in block
    assert "| 002 | claim / b |" in block and "**WEAK**" in block
    assert "the extrapolation loses to \"no further gain\" in 1 of 2 and beats it in 1" in block
    assert "| 0.0130 | 0.0083 | no | 25% |" in block
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n\n{mod.BEGIN}\nstale\n{mod.END}\n\nafter\n")
    old, new = mod.update(readme, tmp_path)
    assert "stale" not in new and new.startswith("intro") and new.rstrip().endswith("after")


# --- seed 003: each seed draws its own subset -------------------------------------------------------------------------

def test_subset_per_seed_draws_each_repeats_subset_with_its_seed_and_keeps_reuse_exact(monkeypatch):
    import torch

    import tuneall.training.trainers as T
    from tuneall.core.config import Resources
    from tuneall.data import load_dataset
    from tuneall.runner import TrialContext
    from tuneall.sweeping.driver import run_job

    torch.set_num_threads(1)
    seen = []

    def recording(members="sequential", amp=False):
        def trainer(plan, data, progress=None, eval_steps=()):
            seen.append((plan.seeds, data.x_train[:, :].sum().item()))
            return T.train_sequential(plan, data, progress, eval_steps)
        return trainer

    monkeypatch.setattr(T, "select_trainer", recording)
    data = load_dataset("digits")
    ctx = TrialContext(job=run_job, unit="param-steps", min_steps=10, seeds=2, seed=3, rules=("mean",),
                       resources=Resources(cpus=1))
    point = {"family": "cnn3", "width": 0.25, "depth": None, "k": 1, "data_fraction": 0.25, "lr": 0.05,
             "momentum": 0.9, "batch_size": 32}
    out = pd.DataFrame(json.loads(run_job({"point": point, "budgets": [2e5, 4e5], "subset_per_seed": True}, ctx,
                                          data)["cells_json"]))
    assert [s for s, _ in seen] == [((3,),), ((1003,),)]  # one training per repeat, with its own seeds
    assert seen[0][1] != seen[1][1]  # ... on its own subset
    assert sorted(out["fraction_seed"].unique()) == [3, 1003]
    seen.clear()
    fixed = pd.DataFrame(json.loads(run_job({"point": point, "budgets": [2e5, 4e5]}, ctx, data)["cells_json"]))
    assert [s for s, _ in seen] == [((3,), (1003,))] and (fixed["fraction_seed"] == 0).all()
    # Anytime reuse stays exact with a subset per seed: the smaller budget's cells equal a fresh run of it.
    fresh = pd.DataFrame(json.loads(run_job({"point": point, "budgets": [2e5], "subset_per_seed": True}, ctx,
                                            data)["cells_json"]))
    got = out[out["budget"] == 2e5].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["repeat", "ensemble_acc", "ensemble_nll"]],
                                  fresh[["repeat", "ensemble_acc", "ensemble_nll"]])


def test_sweep_config_varies_the_subset_with_the_seed_by_default():
    from tuneall.planning.space import parse_space
    from tuneall.sweeping.driver import SweepConfig, plan_sweep

    space = parse_space({"name": "t", "families": ["cnn3"], "width": [0.25], "k": [1], "data_fraction": [0.5, 1.0],
                         "batch_size": 32})
    cfg = SweepConfig(budgets=(2e5, 4e5), space=space, dataset="digits", seeds=2, min_steps=10)
    assert cfg.subset_per_seed and cfg.to_json()["subset_per_seed"] is True
    jobs, _ = plan_sweep(cfg)
    assert all(j["subset_per_seed"] for j in jobs)
    off = SweepConfig(budgets=(2e5, 4e5), space=space, dataset="digits", seeds=2, min_steps=10, subset_per_seed=False)
    assert not any(j["subset_per_seed"] for j in plan_sweep(off)[0])


def test_frontier_study_reports_how_often_the_fit_beats_persistence_over_seed_resamples():
    from tuneall.reporting.powerlaw import frontier_study

    rng = np.random.default_rng(0)
    budgets = [1e5, 4e5, 1.6e6, 6.4e6, 2.56e7]
    rows = []
    for c in budgets:
        for r in range(4):  # a clean power law still falling at the largest budget: persistence must lose
            acc = 1 - (0.02 + 30 * c ** -0.5) + rng.normal(0, 2e-4)
            rows.append({"family": "cnn3", "width": 0.5, "depth": 3, "k": 1, "data_fraction": 1.0, "lr": 0.05,
                         "momentum": 0.9, "batch_size": 128, "budget": c, "rule": "mean", "repeat": r, "status": "ok",
                         "ensemble_acc": acc, "steps": int(c / 1000)})
    hold = frontier_study(pd.DataFrame(rows), n_boot=50)["holdout"]
    best = hold[hold["class"] == "best"].iloc[0]
    assert best["abs_error"] < best["persistence_abs_error"] and fit_beats_persistence(hold) is True
    assert best["p_fit_beats_persistence"] > 0.9
    assert hold["p_fit_beats_persistence"].between(0, 1).all()


@pytest.mark.parametrize("flag, per_seed", [([], True), (["--fixed-subset"], False)])
def test_seed003_example_says_which_subset_its_errors_include(tmp_path, flag, per_seed):
    out = _example("seed003_data").main(["--smoke-test", "--local", "--seeds", "2", "--out", str(tmp_path), *flag])
    conf = json.loads((out / "sweep.json").read_text())["config"]
    assert conf["subset_per_seed"] is per_seed
    text = (out / "findings.md").read_text()
    assert ("each seed draws its own data subset" in text) == per_seed
    assert ("one fixed subset per fraction" in text) == (not per_seed)
    cells = pd.read_csv(out / "cells.csv")
    sub = cells[cells["data_fraction"] < 1]
    assert (sub["fraction_seed"].nunique() == 2) == per_seed
    v = pd.read_csv(out / "verdicts.csv")
    assert list(v.columns) == VERDICT_COLUMNS and set(v["verdict"]) <= {REPRODUCED, WEAK, NOT_REPRODUCED}
    assert "**" + v["verdict"].iloc[0] + "**" in text
