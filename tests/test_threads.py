"""The number of intra-op threads a trial trains with follows the CPUs the trial holds (no Ray needed)."""

from __future__ import annotations

import pytest
import torch

import tuneall.training.member
import tuneall.training.trainers
import tuneall.training.trial
from tuneall.core.budget import Budget
from tuneall.data import load_dataset
from tuneall.planning.factory import Resources
from tuneall.runner import TrialContext, run_job, train_member_task
from tuneall.tuning.driver import trial_metrics


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def seen_threads(monkeypatch):
    """Record torch.get_num_threads() at the moment each member starts training."""
    seen = []
    real = tuneall.training.member.train_member

    def recording(*args, **kw):
        seen.append(torch.get_num_threads())
        return real(*args, **kw)

    monkeypatch.setattr(tuneall.training.trainers, "train_member", recording)
    monkeypatch.setattr(tuneall.training.member, "train_member", recording)
    return seen


def _ctx(cpus: float) -> TrialContext:
    # cnn3 w=0.25 d=1 on digits has P = 186: 10 steps per member for k = 2.
    return TrialContext(job=trial_metrics, budget=Budget(4000, min_steps=5), seeds=1, seed=0,
                        resources=Resources(cpus=cpus), objectives=(("ensemble_acc_mean", "max"),))


POINT = {"point": {"family": "cnn3", "width": 0.25, "depth": 1, "k": 2, "data_fraction": 1.0, "lr": 0.05,
                   "momentum": 0.9, "batch_size": 32}}


@pytest.mark.parametrize("cpus,threads", [(1, 1), (2, 2), (0.5, 1), (3.7, 3)])
def test_trial_threads_follow_cpu_resources(seen_threads, cpus, threads):
    torch.set_num_threads(7 if threads != 7 else 5)  # something else, to see that the trial sets it
    out = run_job(POINT, _ctx(cpus), load_dataset("digits"))  # what every trial process runs
    assert out["status"] == "ok" and out["steps"] == 10
    assert seen_threads == [threads, threads]  # both members


def test_parallel_member_task_threads_follow_its_bundle(seen_threads):
    torch.set_num_threads(5)
    data = load_dataset("digits")
    r = train_member_task("cnn3", 0.25, 1, data, 10, 0, tuneall.training.member.TrainConfig(batch_size=32), 2, ())
    assert seen_threads == [2] and r.steps_done == 10
