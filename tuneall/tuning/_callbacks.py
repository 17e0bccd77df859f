"""Ray Tune callbacks of a search, run in the driver (imported lazily: this pulls in ray.tune)."""

from __future__ import annotations

import logging

from ray.tune import Callback

from tuneall.rundir import journal
from tuneall.core.progress import SearchProgress


def _no_restore_hint(record) -> bool:
    """Ray Tune's "Resume experiment with: Tuner.restore(...)" after a stop: tuneall's own line says how to
    continue (``tuneall resume DIR``); two ways, one of them wrong for tuneall, would confuse."""
    return "Tuner.restore(" not in record.getMessage()


logging.getLogger("ray.tune.tune").addFilter(_no_restore_hint)


def _full_trial(trial) -> bool:
    """Whether a Ray trial is one of the search's trials, not a halving rung's (those go to ``halving.jsonl``:
    :class:`tuneall.tuning._searchers.Halving`)."""
    from tuneall.tuning.halving import is_rung

    return not is_rung(trial.config or {})


def _config(trial) -> dict:
    """The trial's config as the journal keeps it: the point, without the k its members were planned with."""
    return {k: v for k, v in (trial.config or {}).items() if k != "reuse_ks"}


ORDER_STRIDE = 1_000_000  # more trials than one run ever creates


def trial_order(base: int, trial) -> int | None:
    """A trial's place in the order its search suggested it: Ray's trial counter (the number its ``experiment_tag``
    starts with: creation order, which is the searcher's suggestion order and Optuna's trial-number order) after
    ``base``, the journal's records when this run started (a resumed run's counter starts at 1 again). Not Ray's
    trial id: in Ray 2.60 that is 8 random hex digits, so ordering by it broke exact ties differently in every run."""
    try:
        return base * ORDER_STRIDE + int(str(trial.experiment_tag).split("_", 1)[0])
    except (TypeError, ValueError, AttributeError):
        return None


class JournalCallback(Callback):
    """Writes each finished or failed trial to the results directory's journal as soon as the driver learns of it,
    with its suggestion order (:func:`trial_order`: what breaks the answer rule's exact ties)."""

    def __init__(self, results_dir: str, base: int = 0):
        self.results_dir, self.base = results_dir, base  # base: the journal's usable records at the start

    def on_trial_complete(self, iteration, trials, trial, **info):
        if "status" not in (trial.last_result or {}) or not _full_trial(trial):
            return  # stopped before it reported (Ctrl-C): not finished, so a resume runs it again
        journal.append(self.results_dir, {"trial_id": trial.trial_id, "config": _config(trial),
                                          "metrics": dict(trial.last_result or {}), "error": None,
                                          "order": trial_order(self.base, trial)})

    def on_trial_error(self, iteration, trials, trial, **info):
        from tuneall.runner import signals

        if signals.received() or not _full_trial(trial):  # a process-group signal stopped the trial too: not its
            return  # failure, so a resume reruns it (a rung trial's failure is halving.jsonl's)
        journal.append(self.results_dir, {"trial_id": trial.trial_id, "config": _config(trial), "metrics": {},
                                          "error": error_line(trial), "order": trial_order(self.base, trial)})


def error_line(trial) -> str:
    msg = getattr(trial, "error_msg", None) or "trial failed"
    return str(msg).strip().splitlines()[-1][:500]


class ProgressCallback(Callback):
    """One line per finished trial (see :class:`tuneall.core.progress.SearchProgress`): allocation, objective mean ± std,
    best so far, trials done / left and the search's ETA from measured speed."""

    def __init__(self, progress: SearchProgress, base: int = 0):
        self.progress, self.base = progress, base  # base: the journal's records at the start (trial_order)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        if "status" in result and _full_trial(trial):
            config = trial.config or {}
            self.progress.trial_finished(config.get("point", config), result, order=trial_order(self.base, trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        if _full_trial(trial):
            config = trial.config or {}
            self.progress.trial_finished(config.get("point", config), {}, error=error_line(trial))


LIVE_TABLE_EVERY_S = 30.0  # Ray's table of trials at most this often (the per-trial lines carry the news)


def live_table(objectives, grid: bool):
    """Ray Tune's table of trials with the allocation and the objective(s) as columns (Ray's legacy CLIReporter:
    the newer output engine infers four columns from the first result and prints a result box per trial)."""
    from ray.tune import CLIReporter

    prefix = "point/" if grid else ""  # a grid trial's config is {"point": {...}}
    params = {f"{prefix}{c}": c for c in ("family", "width", "depth", "k", "data_fraction")}
    metrics = {"status": "result", **{m: m for m, _ in objectives}}
    # The best trial line follows the TuneConfig's metric and mode (set there, not here).
    return CLIReporter(parameter_columns=params, metric_columns=metrics, max_report_frequency=LIVE_TABLE_EVERY_S,
                       max_progress_rows=20)

