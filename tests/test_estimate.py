"""The time estimate printed before a search: seeds x k x steps x (timed seconds per step of each architecture)."""

from __future__ import annotations

import math

import pandas as pd

import tuneall
from tuneall.training import estimate
from tuneall.data import dataset_info


def test_trial_seconds_scale_with_member_steps_per_architecture(monkeypatch):
    timed = []

    def fake_step_seconds(family, width, depth, info, batch_size, threads):
        timed.append((family, width, depth, batch_size, threads))
        return 0.01 * width

    monkeypatch.setattr(estimate, "step_seconds", fake_step_seconds)
    feasible, _ = tuneall.plan(budget=3e7, dataset="digits")
    est = estimate.trial_seconds(feasible, dataset_info("digits"), seeds=3, threads=2)
    # Each architecture is timed once, with the trial's threads, whatever its number of (k, steps) rows.
    assert len(timed) == feasible["width"].nunique() and {t[-1] for t in timed} == {2}
    expected = 3 * feasible["k"] * feasible["steps"] * 0.01 * feasible["width"]
    pd.testing.assert_series_equal(est, expected, check_names=False)
    line = estimate.describe(est, 1234.0, "12 trials")
    assert f"{estimate.fmt_seconds(est.min())} to {estimate.fmt_seconds(est.max())} per trial" in line
    assert line.endswith("; 12 trials: about 21 min")


def test_sweep_prints_an_estimate_of_all_its_jobs(monkeypatch, capsys):
    from tuneall.planning.space import parse_space
    from tuneall.sweeping.driver import SweepConfig, _print_estimate, plan_sweep

    monkeypatch.setattr(estimate, "step_seconds", lambda family, width, *a: 0.001 * width)
    space = parse_space({"name": "s", "families": ["cnn3"], "width": [0.25, 0.5], "k": [1, 2]})
    cfg = SweepConfig(budgets=(1e6, 4e6), dataset="digits", space=space, seeds=2, min_steps=20)
    jobs, _ = plan_sweep(cfg)
    _print_estimate(cfg, jobs, dataset_info("digits"), concurrency=2)
    total = sum(0.001 * j["point"]["width"] * j["member_steps"] for j in jobs) / 2
    assert capsys.readouterr().out.strip().endswith(f"all {len(jobs)} trial(s), 2 at a time: about "
                                                    f"{estimate.fmt_seconds(total)}")


def test_step_seconds_is_measured_on_the_real_member_training():
    s = estimate.step_seconds("cnn3", 0.25, 3, dataset_info("digits"), batch_size=32, threads=1)
    assert math.isfinite(s) and s > 0


def test_fmt_seconds_units():
    assert [estimate.fmt_seconds(s) for s in (12, 600, 3 * 3600, 5 * 86400)] == ["12 s", "10 min", "3.0 h",
                                                                                 "5.0 days"]


def test_sweep_estimate_times_the_planned_members_of_a_design_point(monkeypatch, capsys):
    from tuneall.sweeping.driver import SweepConfig, _print_estimate, plan_sweep

    timed = []
    monkeypatch.setattr(estimate, "step_seconds", lambda family, width, *a: timed.append(width) or 0.001)
    deq = {"family": "cnn3", "width": 1.0, "depth": 3, "k": 4, "design": "deq"}
    cfg = SweepConfig(budgets=(5e6, 1e7), dataset="digits", points=(deq,), seeds=1, min_steps=20)
    jobs, cells = plan_sweep(cfg)
    _print_estimate(cfg, jobs, dataset_info("digits"), concurrency=1)
    assert timed == [cells.iloc[0]["width"]] and timed[0] < 1.0  # the deq member's width, not the single's
