"""What ``tuneall train`` prints while it trains: what it trains, then a heartbeat in the user's terms (member j of
k, seed s of the --seeds repeats) over all of the run's member-steps, instead of minutes of silence."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

from tuneall.core.config import HEARTBEAT_S
from tuneall.core.progress import allocation_label, trial_heartbeat

TRAIN_HEARTBEAT_S = min(HEARTBEAT_S, 20.0)  # a single run in a terminal: a line at least every 20 s


def announce_train(plan, dataset: str, budget) -> None:
    """One line before training starts: the allocation, its plan and the member-steps it will train."""
    total = plan.k * plan.steps * len(plan.seeds)
    print(f"tuneall: training {allocation_label(plan.row())} on {dataset} at C = {budget}: {len(plan.seeds)} "
          f"repeat(s) x {plan.k} member(s) x {plan.steps:,} steps = {total:,} member-steps, "
          f"{plan.params_per_member:,} parameters per member", flush=True)


@contextmanager
def train_heartbeat(plan, on: bool):
    """The plan with members' heartbeats switched on, inside one run-level heartbeat (the plan unchanged when off)."""
    if not on:
        yield plan
        return
    total = plan.k * plan.steps * len(plan.seeds)
    with trial_heartbeat(allocation_label(plan.row()), total, TRAIN_HEARTBEAT_S, plan.seeds):
        yield replace(plan, train=replace(plan.train, heartbeat_s=TRAIN_HEARTBEAT_S))


def run_with_progress(plan, data, dataset: str, budget, threads: int, progress, **kw):
    """``run_trial`` of ``tuneall train`` with ``threads`` torch threads and, when ``progress`` is on, its plan line
    and heartbeats first."""
    from tuneall.training.trial import run_trial, with_threads

    if progress:
        announce_train(plan, dataset, budget)
    with with_threads(threads), train_heartbeat(plan, bool(progress)) as plan:
        return run_trial(plan, data, progress=progress, **kw)


__all__ = ["announce_train", "train_heartbeat", "run_with_progress", "TRAIN_HEARTBEAT_S"]
