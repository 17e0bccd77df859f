"""Ray Tune callbacks (imported lazily: this pulls in ray.tune)."""

from __future__ import annotations

from ray.tune import Callback

from tuneall import journal


class JournalCallback(Callback):
    """Writes each finished or failed trial to the results directory's journal as soon as the driver learns of it."""

    def __init__(self, results_dir: str):
        self.results_dir = results_dir

    def on_trial_complete(self, iteration, trials, trial, **info):
        if "status" not in (trial.last_result or {}):
            return  # stopped before it reported (Ctrl-C): not finished, so a resume runs it again
        journal.append(self.results_dir, {"trial_id": trial.trial_id, "config": trial.config,
                                          "metrics": dict(trial.last_result or {}), "error": None})

    def on_trial_error(self, iteration, trials, trial, **info):
        msg = getattr(trial, "error_msg", None) or "trial failed"
        journal.append(self.results_dir, {"trial_id": trial.trial_id, "config": trial.config, "metrics": {},
                                          "error": str(msg).strip().splitlines()[-1][:500]})
