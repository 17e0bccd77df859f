"""Before a search starts: the plan and the training-time estimate, ``dry_run`` (nothing trained, nothing written),
and the question asked before a long search when a person can answer it (:func:`tuneall.core.progress.confirm`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from tuneall.core.errors import NotStarted
from tuneall.core.progress import CONFIRM_ABOVE_S, confirm as ask_user, fmt_duration, interactive


@dataclass
class Preflight:
    trials: int  # trials still to run
    concurrency: int
    per_trial_s: pd.Series | None = None  # estimated seconds of each feasible allocation (None: no estimate here)

    @property
    def mean_trial_s(self) -> float | None:
        return None if self.per_trial_s is None or self.per_trial_s.empty else float(self.per_trial_s.mean())

    @property
    def total_s(self) -> float | None:
        m = self.mean_trial_s
        return None if m is None else m * self.trials / self.concurrency


def local_concurrency(cfg) -> int:
    """Trials at a time before Ray starts: as asked, else what this machine's (or ``num_cpus``) CPUs hold."""
    if cfg.concurrency:
        return cfg.concurrency
    cpus = cfg.num_cpus or os.cpu_count() or 1
    return max(1, int(cpus // max(cfg.resources.cpus, 1e-9)))


def preflight(cfg, feasible: pd.DataFrame, trials: int, verbose: int = 1, dry_run: bool = False,
              confirm: bool = True) -> Preflight:
    """Estimate the search here (local CPU trials only), print it, and with ``dry_run`` also the plan; ask before
    a long search where a person can answer. Raises :class:`NotStarted` when the answer is no."""
    from tuneall.data import dataset_info
    from tuneall.training.estimate import describe, trial_seconds

    pf = Preflight(trials=trials, concurrency=local_concurrency(cfg))
    if trials and cfg.address is None and cfg.resources.gpus == 0:  # trials run on this machine's CPUs
        try:
            info = dataset_info(cfg.dataset, cfg.val_fraction)
            pf.per_trial_s = trial_seconds(feasible, info, cfg.seeds, cfg.resources.threads)
        except Exception as e:  # noqa: BLE001  an estimate must never stop a run
            if verbose:
                print(f"tuneall: no time estimate ({type(e).__name__}: {e})", flush=True)
    how = f"{trials} trial(s), {pf.concurrency} at a time, if they resemble the average feasible point"
    if dry_run:
        table = feasible.copy()
        if pf.per_trial_s is not None:
            table["est_train"] = pf.per_trial_s.map(fmt_duration)
        cols = [c for c in ("family", "width", "depth", "k", "data_fraction", "params_per_member", "steps",
                            "est_train") if c in table]
        print(f"tuneall: dry run of {cfg.run_name}: {len(feasible)} feasible allocation(s) of space "
              f"{cfg.space.name!r} on {cfg.dataset} at C = {cfg.budget}; {cfg.searcher}, {trials} trial(s) to run, "
              f"{cfg.seeds} seed(s) each. Nothing is trained or written.")
        print(table[cols].to_string(index=False))
    if pf.per_trial_s is not None and (verbose or dry_run):
        print(f"tuneall: {describe(pf.per_trial_s, pf.total_s, how)}", flush=True)
    if cfg.time_budget_s and (verbose or dry_run):
        print(f"tuneall: time budget {fmt_duration(cfg.time_budget_s)}: no trial is started that would end after "
              "it; trials already running finish", flush=True)
    total = pf.total_s
    if not dry_run and confirm and total is not None and total > CONFIRM_ABOVE_S and interactive():
        limit = f" (stopping at the time budget of {fmt_duration(cfg.time_budget_s)})" if cfg.time_budget_s else ""
        if not ask_user(f"tuneall: the search is estimated at about {fmt_duration(total)}{limit}. Start it?"):
            raise NotStarted("not started; nothing was written")
    return pf


__all__ = ["Preflight", "preflight", "NotStarted", "local_concurrency"]
