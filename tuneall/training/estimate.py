"""A rough training-time estimate of a search before it starts: a few timed SGD steps per architecture, here.

A budget such as 1e10 param-steps on a small model means millions of steps per trial; the estimate tells the user
before the first trial whether the search takes minutes or days. It times ``train_member`` itself on synthetic
inputs of the dataset's shape (the speed does not depend on the values), so it is only meaningful where trials run
on this machine's CPUs: local Ray, no GPUs.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd

from tuneall.data import DatasetInfo, make_synthetic
from tuneall.core.config import TrainConfig
from tuneall.core.errors import ConfigError
from tuneall.core.progress import fmt_duration

TIMED_STEPS = 3
WARN_S = 7 * 86400  # an estimate above a week gets a warning line: the budget is probably a typo or far too large


def step_seconds(family: str, width: float, depth, info: DatasetInfo, batch_size: int, threads: int) -> float:
    """Seconds per SGD step of one member of this architecture on this machine, with ``threads`` torch threads."""
    import torch

    from tuneall.training.member import train_member

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


def per_step_seconds(rows: pd.DataFrame, info: DatasetInfo, threads: int) -> pd.Series:
    """Seconds per step of each row's architecture (``family``, ``width``, ``depth``, ``batch_size``), each distinct
    architecture timed once."""
    cols = ["family", "width", "depth", "batch_size"]
    rows = rows.reindex(columns=cols)
    rows["batch_size"] = rows["batch_size"].fillna(TrainConfig().batch_size)
    per_arch = {}
    for key in rows.drop_duplicates().itertuples(index=False):
        depth = None if pd.isna(key.depth) else int(key.depth)
        per_arch[tuple(key)] = step_seconds(key.family, key.width, depth, info, int(key.batch_size), threads)
    return pd.Series([per_arch[tuple(r)] for r in rows.itertuples(index=False)], index=rows.index, dtype=float)


def check_estimate_threads(threads: int) -> None:
    """An estimate times steps with ``threads`` torch threads here: no more than this machine has (a thousand
    threads on two cores would hang it)."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if threads > cpus:
        raise ConfigError(f"an estimate with {threads} threads per trial needs more than this machine's {cpus} CPUs; "
                          "lower the cpus per trial")


def trial_seconds(feasible: pd.DataFrame, info: DatasetInfo, seeds: int, threads: int) -> pd.Series:
    """Estimated training seconds of each feasible allocation: seeds x k x steps x (seconds per step)."""
    check_estimate_threads(threads)
    return per_step_seconds(feasible, info, threads) * feasible["k"] * feasible["steps"] * seeds


def fmt_seconds(s: float) -> str:
    """An estimate's duration (whole minutes): the project's one formatter, :func:`tuneall.core.progress.fmt_duration`."""
    return fmt_duration(s, minute_digits=0)


def announce(compute: Callable[[], pd.Series], total: Callable[[pd.Series], float], how: str) -> None:
    """Print the estimate line of a search or sweep: ``compute()`` gives seconds per trial, ``total`` the run's.

    An estimate must never stop a run: if timing fails, say so in one line and go on."""
    try:
        per_trial = compute()
    except Exception as e:  # noqa: BLE001
        print(f"tuneall: no time estimate ({type(e).__name__}: {e})", flush=True)
        return
    total_s = total(per_trial)
    print(f"tuneall: {describe(per_trial, total_s, how)}", flush=True)
    if total_s > WARN_S:
        import sys

        print(f"tuneall: warning: this run would take about {fmt_seconds(total_s)} on this machine; stop it "
              "(Ctrl-C) and lower the budget or the trials unless that is intended", file=sys.stderr, flush=True)


def describe(per_trial: pd.Series, total_s: float, how: str) -> str:
    """One line: the range of trial times, and the whole run's ``total_s`` with ``how`` it was reckoned."""
    return (f"estimated training time on this machine: {fmt_seconds(per_trial.min())} to "
            f"{fmt_seconds(per_trial.max())} per trial (median {fmt_seconds(per_trial.median())}); "
            f"{how}: about {fmt_seconds(total_s)}")
