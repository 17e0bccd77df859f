"""`tuneall sweep`: budgets parsing, anytime reuse (exactly a fresh run; no more member-steps than the largest
budget), and the sweep end to end through Ray Tune."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuneall import cli
from tuneall.core.errors import BudgetError
from tuneall.planning.space import parse_space
from tuneall.core.config import Resources
from tuneall.runner import TrialContext
from tuneall.sweeping.driver import SweepConfig, parse_budgets, plan_sweep, reuse_blocker, run_job

TINY = {"name": "tiny", "families": ["cnn3"], "width": [0.25, 0.5], "k": [1, 2], "batch_size": 32}
METRICS = ["ensemble_acc", "ensemble_nll", "ensemble_ece", "member_acc_mean", "disagreement"]
METRICS += [f"val_{m}" for m in METRICS]  # cells carry both splits; the validation carve is the same for every job


@pytest.fixture(scope="module")
def ray_local():
    """One loopback-only Ray for the module (127.0.0.2: Ray rewrites 127.0.0.1 to the external address)."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2", configure_logging=False)
    yield ray
    ray.shutdown()


def test_parse_budgets_lists_and_log_ranges():
    assert parse_budgets("3e8, 1e8,1e9") == (1e8, 3e8, 1e9)
    assert parse_budgets("1e8:1e10:5") == pytest.approx((1e8, 3.16228e8, 1e9, 3.16228e9, 1e10), rel=1e-6)
    assert parse_budgets("1e8:1e10:5")[-1] == 1e10  # the ends are exactly what was typed
    assert parse_budgets([2e6, 1e6]) == (1e6, 2e6)


@pytest.mark.parametrize("spec,words", [
    ("abc,1e6", "positive number"), ("0,1e6", "positive finite"), ("-1e6,1e6", "positive finite"),
    ("1e6", "at least 2 budgets"), ("1e6,1e6", "twice"), ("1e6:1e7", "LOW:HIGH:N"), ("1e6:1e7:3:4", "LOW:HIGH:N"),
    ("1e7:1e6:3", "LOW < HIGH"), ("1e6:1e7:1", "N >= 2"), ("1e6:1e7:x", "integer N"), ("x:1e7:3", "positive number"),
])
def test_bad_budgets_are_one_line_user_errors(spec, words, capsys):
    with pytest.raises(BudgetError, match=words):
        parse_budgets(spec)
    assert cli.main(["sweep", f"--budgets={spec}", "--dataset", "digits"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tuneall: error:") and err.count("\n") == 1


def _cfg(reuse=True, **kw) -> SweepConfig:
    return SweepConfig(budgets=(2e5, 6e5, 1.2e6), space=parse_space(TINY), dataset="digits", seeds=2, min_steps=10,
                       reuse=reuse, **kw)


def test_reuse_plans_no_more_member_steps_than_the_largest_budget():
    jobs, cells = plan_sweep(_cfg())
    feasible = cells[cells["feasible"]]
    largest = feasible[feasible["budget"] == 1.2e6]
    # One job per allocation, trained at the largest budget's steps, filling every budget where it is feasible.
    assert len(jobs) == len(largest) == 4
    assert sum(j["member_steps"] for j in jobs) == largest["member_steps"].sum()
    assert sum(len(j["budgets"]) for j in jobs) == len(feasible)
    fresh, _ = plan_sweep(_cfg(reuse=False))
    assert len(fresh) == len(feasible)
    assert sum(j["member_steps"] for j in fresh) == feasible["member_steps"].sum() > largest["member_steps"].sum()
    # member-steps of a cell = k x seeds x floor(C / (k P)), counted independently of the factory
    row = feasible.iloc[0]
    assert row["member_steps"] == row["k"] * 2 * (row["budget"] // (row["k"] * row["params_per_member"]))


def test_a_schedule_tied_to_total_steps_falls_back_to_fresh_runs(monkeypatch):
    class Scheduled:
        anytime_exact = False  # e.g. a cosine schedule over the total steps

    from tuneall.core.config import TrainConfig

    assert reuse_blocker(Scheduled()) and reuse_blocker(TrainConfig()) is None
    monkeypatch.setattr("tuneall.sweeping.driver._train_of", lambda point: Scheduled())
    jobs, cells = plan_sweep(_cfg())
    assert all(len(j["budgets"]) == 1 for j in jobs) and len(jobs) == cells["feasible"].sum()


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_reused_cells_equal_fresh_runs_with_the_same_seeds(fraction):
    import torch

    from tuneall.data import load_dataset

    torch.set_num_threads(1)
    data = load_dataset("digits")
    ctx = TrialContext(job=run_job, unit="param-steps", min_steps=10, seeds=2, seed=3, rules=("mean", "geometric"),
                       resources=Resources(cpus=1))
    point = {"family": "cnn3", "width": 0.25, "depth": None, "k": 2, "data_fraction": fraction, "lr": 0.05,
             "momentum": 0.9, "batch_size": 32}
    budgets = [2e5, 5e5, 8e5]
    once = run_job({"point": point, "budgets": budgets}, ctx, data)
    reused = pd.DataFrame(json.loads(once["cells_json"]))
    assert once["member_steps"] == 2 * 2 * reused["steps"].max()  # trained only to the largest budget's steps
    for c in budgets[:-1]:
        fresh = pd.DataFrame(json.loads(run_job({"point": point, "budgets": [c]}, ctx, data)["cells_json"]))
        got = reused[reused["budget"] == c].reset_index(drop=True)
        assert got["reused"].all() and not fresh["reused"].any()
        assert (got["steps"] < reused["steps"].max()).all()
        pd.testing.assert_frame_equal(got[["steps", "rule", "repeat", *METRICS]], fresh[["steps", "rule", "repeat",
                                                                                          *METRICS]])


def _example(name: str):
    path = Path(__file__).resolve().parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_sweep_end_to_end_reuse_matches_fresh_and_counts_member_steps(ray_local, tmp_path, capsys):
    """Seed 000's example in smoke mode (a real Ray Tune sweep with reuse) against the same sweep trained fresh."""
    from tuneall.api import sweep

    ex = _example("seed000_crossover")
    out = ex.main(["--smoke-test", "--out", str(tmp_path)])
    assert "tuneall: estimated training time on this machine: " in capsys.readouterr().out
    conf = dict(ex.SMOKE, space=parse_space(ex.SMOKE["space"]))
    # Trained fresh in this process: the reused cells from Ray's workers must equal them bit for bit.
    fresh = sweep(conf.pop("budgets"), name="fresh", reuse=False, per_budget_reports=False, storage_path=str(tmp_path),
                  executor="local", **conf)
    meta, meta_f = (json.loads((d / "sweep.json").read_text())["sweep"] for d in (out, fresh))
    # Counted from what the members actually ran: reuse trains at most what the largest budget alone needs (less:
    # the member store shares member j between the k of an architecture; test_sweep_member_store_... below).
    assert meta["member_store"] and meta["member_steps_trained"] <= meta["member_steps_largest_budget"]
    assert meta_f["member_steps_trained"] == meta_f["member_steps_without_reuse"] > meta["member_steps_trained"]
    jobs = pd.read_csv(out / "jobs.csv")
    assert jobs["member_steps"].sum() == meta["member_steps_trained"] and len(jobs) == 4
    assert meta["member_steps_trained"] + meta["member_steps_reused"] >= meta["member_steps_largest_budget"]
    key = ["width", "k", "budget", "rule", "repeat"]
    a = pd.read_csv(out / "cells.csv").sort_values(key, ignore_index=True)
    b = pd.read_csv(fresh / "cells.csv").sort_values(key, ignore_index=True)
    assert len(a) == len(b) == 2 * (2 + 2 + 2)  # seeds x feasible cells (w=0.5 cannot train at 2e5 with k=2)
    pd.testing.assert_frame_equal(a[key + ["steps"] + METRICS], b[key + ["steps"] + METRICS])
    assert a["reused"].sum() > 0 and not b["reused"].any()
    # The same outputs per budget as `search`, plus the cross-budget ones.
    for c in meta["budgets"]:
        d = out / f"budget_{c:.4g}"
        for f in ("trials.csv", "frontier.csv", "summary.md", "best_per_k.csv", "tuneall.json"):
            assert (d / f).exists(), (d, f)
        trials = pd.read_csv(d / "trials.csv")
        assert (trials.loc[trials["status"] == "ok", "budget"] == c).all()
    for f in ("summary.md", "findings.md", "crossover.png", "crossover_budgets.csv", "accuracy_vs_flops.png",
              "frontier_fit.png", "powerlaw_fits.csv", "optimal_k.csv"):
        assert (out / f).exists(), f
    text = (out / "summary.md").read_text()
    assert "Size-compute crossover" in text and "anytime reuse" in text
    assert "fresh runs per budget: reuse=False" in (fresh / "summary.md").read_text()
    assert np.isfinite(a["ensemble_acc"]).all() and (a["ensemble_acc"] > 0.2).all()


@pytest.mark.parametrize("name,table", [("seed001_switchover", "switchover_map.csv"),
                                        ("seed002_flops", "optimal_k.csv"), ("seed003_data", "data_fraction.csv")])
def test_example_smoke(tmp_path, name, table):
    out = _example(name).main(["--smoke-test", "--local", "--out", str(tmp_path)])  # Ray: the test above
    assert (out / "findings.md").read_text().count("\n") > 3
    assert not pd.read_csv(out / table).empty
    # `tuneall report` on a sweep directory rebuilds its cross-budget report from cells.csv.
    summary = (out / "summary.md").read_text()
    (out / "summary.md").unlink()
    (out / table).unlink()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "summary.md").read_text() == summary and not pd.read_csv(out / table).empty


def test_sweep_member_store_trains_each_member_once_and_its_cells_equal_fresh_ones(tmp_path):
    """Member j of every k of an architecture is one member: the sweep trains it once, to the most steps any (k,
    budget) cell needs, and every cell equals the sweep without the store bit for bit."""
    from tuneall.api import sweep
    from tuneall.core.budget import Budget
    from tuneall.data import dataset_info
    from tuneall.planning.points import plan_point

    conf = dict(budgets="3e5,1e6", dataset="digits", widths=[0.25], k=[1, 2, 4], seeds=2, min_steps=10,
                executor="local", per_budget_reports=False, storage_path=str(tmp_path), verbose=0)
    on = sweep(name="store", **conf)
    off = sweep(name="nostore", member_store=False, **conf)
    m_on, m_off = (json.loads((d / "sweep.json").read_text())["sweep"] for d in (on, off))
    info = dataset_info("digits")
    steps = {k: max(plan_point({"family": "cnn3", "width": 0.25, "k": k}, Budget(c, min_steps=10), info).steps
                    for c in (3e5, 1e6)) for k in (1, 2, 4)}
    once = 2 * (steps[1] + steps[2] + 2 * steps[4])  # seeds x members 0, 1, 2-3 at their largest need
    assert m_on["member_steps_trained"] == once < m_off["member_steps_trained"] == 2 * (steps[1] + 2 * steps[2]
                                                                                            + 4 * steps[4])
    assert m_on["member_steps_reused"] > 0 and m_on["member_store"] and not m_off["member_store"]
    key = ["width", "k", "budget", "rule", "repeat"]
    a = pd.read_csv(on / "cells.csv").sort_values(key, ignore_index=True)
    b = pd.read_csv(off / "cells.csv").sort_values(key, ignore_index=True)
    assert len(a) == len(b) == 2 * 3 * 2
    pd.testing.assert_frame_equal(a[key + ["steps"] + METRICS], b[key + ["steps"] + METRICS])
    assert len(list((on / "member_store").glob("*.pt"))) == 2 * 4 and not (off / "member_store").exists()
