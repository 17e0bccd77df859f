"""`tuneall search` end to end with real Ray Tune and a real Optuna study, plus the searcher's constraint handling."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from tuneall.core.budget import Budget
from tuneall.planning.factory import Resources
from tuneall.reporting.frontier import FRONTIER_OBJECTIVES
from tuneall.planning.points import plan_space
from tuneall.tuning.define_by_run import DefineByRun
from tuneall.reporting.search_report import ID_DTYPES, build_report
from tuneall.planning.space import parse_space

TINY = {"name": "tiny", "families": ["cnn3"], "width": [0.25, 0.5], "k": [1, 2, 3, 50], "batch_size": 32}


@pytest.fixture(scope="module")
def ray_local():
    """One loopback-only Ray for the module (127.0.0.2: Ray rewrites 127.0.0.1 to the external address)."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2", configure_logging=False)
    yield ray
    ray.shutdown()


def _dominated(df: pd.DataFrame, row: pd.Series) -> bool:
    """Independent check: is ``row`` beaten by some row of ``df`` on every objective (strictly on one)?"""
    for _, other in df.iterrows():
        ge = all((other[c] >= row[c]) if m == "max" else (other[c] <= row[c]) for c, m in FRONTIER_OBJECTIVES)
        gt = any((other[c] > row[c]) if m == "max" else (other[c] < row[c]) for c, m in FRONTIER_OBJECTIVES)
        if ge and gt:
            return True
    return False


@pytest.mark.slow
def test_tpe_search_end_to_end(ray_local, tmp_path, capsys):
    import tuneall

    space = parse_space(TINY)
    front = tuneall.search(budget=2e6, dataset="digits", space=space, trials=5, seeds=2, min_steps=20,
                           storage_path=str(tmp_path), name="tpe", verbose=1)
    printed = capsys.readouterr().out
    assert "tuneall: estimated training time on this machine: " in printed  # --quiet (verbose 0) omits it
    assert "tuneall: trial 5/5 " in printed and "ensemble_acc_mean" in printed
    out = tmp_path / "tpe"
    for f in ("trials.csv", "trials.parquet", "trials_summary.csv", "frontier.csv", "summary.md", "tuneall.json",
              "accuracy_vs_k.png", "pareto.png", "optuna_trials.csv", "best_per_k.csv", "best_per_width.csv"):
        assert (out / f).exists(), f
    trials = pd.read_csv(out / "trials.csv", dtype=ID_DTYPES)
    # Rows match the trials Ray ran: one trial directory per trial, one row per trial and repeat.
    ray_trials = {p.name.split("_")[1] for p in out.iterdir() if p.is_dir() and p.name.startswith("trainable_")}
    assert set(trials["trial_id"]) == ray_trials and len(ray_trials) == 5
    ok = trials[trials["status"] == "ok"]
    assert (ok.groupby("trial_id")["repeat"].count() == 2).all()
    # The budget holds for every trained trial, and steps follow the factory's formula.
    assert (ok["spent"] <= ok["budget"]).all()
    assert (ok["steps"] == np.floor(ok["budget"] / (ok["k"] * ok["params_per_member"]))).all()
    assert ((ok["ensemble_acc"] > 0.3) & (ok["ensemble_acc"] <= 1)).all()
    # The frontier is non-dominated among the successful trials (checked independently) and non-empty.
    summary = pd.read_csv(out / "trials_summary.csv", dtype=ID_DTYPES)
    okay = summary[summary["status"] == "ok"]
    assert len(front) >= 1
    for _, row in front.iterrows():
        assert not _dominated(okay, row)
    # A point TPE proposed again is answered from its first trial and counted once: every other non-dominated
    # trial is on the frontier.
    assert okay.loc[okay["repeat_of"].notna(), "repeat_of"].isin(okay["trial_id"]).all()
    for _, row in okay[okay["repeat_of"].isna()].iterrows():
        if not _dominated(okay, row):
            assert row["trial_id"] in set(front["trial_id"])
    # `tuneall report` rebuilds the same frontier from disk.
    rebuilt = build_report(out)
    pd.testing.assert_frame_equal(rebuilt.reset_index(drop=True), pd.read_csv(out / "frontier.csv", dtype=ID_DTYPES),
                                  check_dtype=False)
    assert set(rebuilt["trial_id"]) == set(front["trial_id"])
    assert "Best allocation" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_grid_search_visits_exactly_the_feasible_points(ray_local, tmp_path):
    import tuneall

    space = parse_space(TINY)
    budget = Budget(2e6, min_steps=20)
    feasible, infeasible = plan_space(space, budget, "digits")
    assert len(infeasible) >= 1  # k = 50 cannot be trained at this budget
    tuneall.search(budget=2e6, dataset="digits", space=space, searcher="grid", seeds=1, min_steps=20,
                   storage_path=str(tmp_path), name="grid", verbose=0)
    trials = pd.read_csv(tmp_path / "grid" / "trials.csv")
    ran = sorted(zip(trials["width"], trials["k"]))
    assert ran == sorted(zip(feasible["width"], feasible["k"]))
    assert (trials["status"] == "ok").all()
    # Determinism (the same allocation gives the same numbers in another run and process) is checked where it is
    # most at risk: tests/test_one_number.py (a search against `tuneall train`) and tests/test_store_cluster.py (every
    # searcher on a two-node cluster against one machine).


def _searcher(space_doc, budget):
    from tuneall.tuning._optuna import ConstrainedOptunaSearch

    space = parse_space(space_doc)
    return ConstrainedOptunaSearch(space=DefineByRun(space, budget, "digits"), metric="ensemble_acc_mean",
                                   mode="max", sampler=optuna.samplers.RandomSampler(seed=0))


def test_infeasible_points_reach_optuna_as_infeasible():
    # width 4 cannot be trained at all at this budget; a continuous width axis is not restricted to the feasible
    # architectures (tuneall.tuning.sampling), so some sampled points are infeasible.
    doc = {"families": ["cnn3"], "width": {"low": 0.25, "high": 4.0, "log": True}, "k": [1, 2]}
    budget = Budget(1e6, min_steps=50)
    s = _searcher(doc, budget)
    from tuneall.planning.factory import Allocation, max_feasible_k

    def untrainable(width):
        return max_feasible_k(Allocation(width=width), budget, "digits") == 0

    seen = {"feasible": 0, "infeasible": 0}
    for i in range(12):
        tid = f"t{i}"
        cfg = s.suggest(tid)
        infeasible = untrainable(cfg["width"])
        seen["infeasible" if infeasible else "feasible"] += 1
        s.on_trial_complete(tid, result={"ensemble_acc_mean": 0.0 if infeasible else 0.5 + i / 100,
                                         "constraint": 1.0 if infeasible else 0.0})
    assert seen["feasible"] and seen["infeasible"]
    trials = s._ot_study.trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)  # never FAIL, never left RUNNING
    for t in trials:
        assert t.constraints["budget_feasible"] == (1.0 if untrainable(t.params["width"]) else 0.0)
    assert not any(untrainable(t.params["width"]) for t in s._ot_study.best_trials)


def test_only_feasible_k_are_sampled():
    # At this budget width 0.5 fits k <= 2 only, width 0.25 fits more: the sampler must never propose k = 6 at 0.5.
    doc = {"families": ["cnn3"], "width": [0.25, 0.5], "k": [1, 2, 6]}
    budget = Budget(1e6, min_steps=20)
    s = _searcher(doc, budget)
    from tuneall.planning.factory import Allocation, max_feasible_k

    kmax = {w: max_feasible_k(Allocation("cnn3", w), budget, "digits") for w in (0.25, 0.5)}
    assert kmax[0.5] < 6 <= kmax[0.25]
    for i in range(30):
        cfg = s.suggest(f"t{i}")
        assert cfg["k"] <= kmax[cfg["width"]]
        s.on_trial_complete(f"t{i}", result={"ensemble_acc_mean": 0.5, "constraint": 0.0})


def test_fractional_gpu_resource_request():
    from ray.tune import PlacementGroupFactory

    pgf = PlacementGroupFactory(Resources(cpus=1, gpus=0.25).bundles(k=4))
    assert pgf.required_resources == {"CPU": 1.0, "GPU": 0.25}
    parallel = Resources(cpus=1, gpus=0.25, parallel_members=True).bundles(k=4)
    assert len(parallel) == 5 and all(b == {"CPU": 1, "GPU": 0.25} for b in parallel[1:])
