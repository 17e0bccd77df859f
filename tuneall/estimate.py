"""A rough training-time estimate of a search before it starts: a few timed SGD steps per architecture, here.

A budget such as 1e10 param-steps on a small model means millions of steps per trial; the estimate tells the user
before the first trial whether the search takes minutes or days. It times ``train_member`` itself on synthetic
inputs of the dataset's shape (the speed does not depend on the values), so it is only meaningful where trials run
on this machine's CPUs: local Ray, no GPUs.
"""

from __future__ import annotations

import pandas as pd

from tuneall.data import DatasetInfo, make_synthetic

TIMED_STEPS = 3


def step_seconds(family: str, width: float, depth, info: DatasetInfo, batch_size: int, threads: int) -> float:
    """Seconds per SGD step of one member of this architecture on this machine, with ``threads`` torch threads."""
    import torch

    from tuneall.training import TrainConfig, train_member

    data = make_synthetic(info.input_shape, info.num_classes, n_train=max(batch_size, 256), n_test=8, seed=0)
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        cfg = TrainConfig(batch_size=batch_size)
        train_member(family, width, depth, data, 1, 0, cfg)  # warm-up: first-call kernel selection, allocator
        r = train_member(family, width, depth, data, TIMED_STEPS, 0, cfg)
        return r.train_time_s / max(1, r.steps_done)
    finally:
        torch.set_num_threads(before)


def trial_seconds(feasible: pd.DataFrame, info: DatasetInfo, seeds: int, threads: int) -> pd.Series:
    """Estimated training seconds of each feasible allocation: seeds x k x steps x (seconds per step)."""
    cols = ["family", "width", "depth", "batch_size"]
    per_step = {}
    for key in feasible[cols].drop_duplicates().itertuples(index=False):
        depth = None if pd.isna(key.depth) else int(key.depth)
        per_step[tuple(key)] = step_seconds(key.family, key.width, depth, info, int(key.batch_size), threads)
    t = [per_step[tuple(r)] for r in feasible[cols].itertuples(index=False)]
    return pd.Series(t, index=feasible.index) * feasible["k"] * feasible["steps"] * seeds


def fmt_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def describe(per_trial: pd.Series, trials: int, concurrency: int) -> str:
    """One line: the range of trial times and the whole search's time if its trials resemble the average point."""
    total = per_trial.mean() * trials / max(1, concurrency)
    return (f"estimated training time on this machine: {fmt_seconds(per_trial.min())} to "
            f"{fmt_seconds(per_trial.max())} per trial (median {fmt_seconds(per_trial.median())}); {trials} trial(s), "
            f"{concurrency} at a time: about {fmt_seconds(total)} if they resemble the average feasible point")
