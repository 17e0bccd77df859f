"""A point the sampler proposes again is answered from the first trial's journal record, not trained again, and the
report counts it once (no Ray needed)."""

from __future__ import annotations

import pytest

import tuneall.training.trial
from tuneall.rundir import journal
from tuneall.core.budget import Budget
from tuneall.data import load_dataset
from tuneall.planning.factory import Resources
from tuneall.reporting.search_report import build_report, write_trials_table
from tuneall.runner import TrialContext
from tuneall.tuning.driver import trial_metrics

POINT = {"family": "cnn3", "width": 0.25, "depth": 1, "k": 2, "data_fraction": 1.0, "lr": 0.05, "momentum": 0.9,
         "batch_size": 32}


def _ctx(results_dir) -> TrialContext:
    return TrialContext(job=trial_metrics, budget=Budget(4000, min_steps=5), seeds=2, seed=0, resources=Resources(),
                        objectives=(("ensemble_acc_mean", "max"),), results_dir=str(results_dir) if results_dir else None)


def test_repeated_point_is_not_trained_again(tmp_path, monkeypatch):
    data = load_dataset("digits")
    first = trial_metrics({"point": POINT}, _ctx(tmp_path), data)  # no journal yet: trains
    assert first["status"] == "ok" and "repeat_of" not in first
    # What Ray Tune adds to a reported result is not part of the trial's metrics.
    journal.append(tmp_path, {"trial_id": "t1", "config": {"point": POINT}, "error": None,
                              "metrics": {**first, "pid": 123, "time_this_iter_s": 1.5, "node_id": "n"}})

    def no_training(*a, **kw):
        raise AssertionError("a repeated point was trained again")

    monkeypatch.setattr(tuneall.training.trial, "run_trial", no_training)
    again = trial_metrics({"point": dict(POINT)}, _ctx(tmp_path), data)
    assert again["repeat_of"] == "t1"
    assert {k: v for k, v in again.items() if k != "repeat_of"} == first
    # Another point is trained (here: reaches the patched run_trial).
    with pytest.raises(AssertionError, match="trained again"):
        trial_metrics({"point": {**POINT, "k": 1}}, _ctx(tmp_path), data)
    # Without a results directory (a worker that cannot read the journal) nothing is looked up.
    monkeypatch.undo()
    assert "repeat_of" not in trial_metrics({"point": POINT}, _ctx(None), data)

    journal.append(tmp_path, {"trial_id": "t2", "config": {"point": POINT}, "metrics": again, "error": None})
    table = write_trials_table(journal.read(tmp_path), tmp_path)
    assert list(table["repeat_of"].fillna("")) == ["", "", "t1", "t1"]  # two repeats (seeds) per trial
    front = build_report(tmp_path)
    assert len(front) == 1 and front.iloc[0]["trial_id"] == "t1"
    assert "1 repeated point(s) answered from the first trial" in (tmp_path / "summary.md").read_text()


def test_trial_ids_that_look_like_numbers_stay_text(tmp_path):
    """Ray's ids are hex: '66607470' must not come back from trials.csv as the number 66607470(.0)."""
    from tuneall.reporting.search_report import load_trials

    rec = {"trial_id": "66607470", "config": {"point": POINT}, "error": None,
           "metrics": {"status": "ok", "ensemble_acc_mean": 0.9}}
    write_trials_table([rec, {**rec, "trial_id": "12345678", "metrics": {**rec["metrics"], "repeat_of": "66607470"}}],
                       tmp_path)
    trials = load_trials(tmp_path)
    assert list(trials["trial_id"]) == ["66607470", "12345678"]
    assert list(trials["repeat_of"].fillna("")) == ["", "66607470"]
