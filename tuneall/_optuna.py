"""Ray Tune's OptunaSearch, taught about infeasible trials and about points already answered. Imported lazily: it
pulls in ray.tune."""

from __future__ import annotations

from ray.tune.search.optuna import OptunaSearch

from tuneall import journal

# How many times a suggestion that repeats an answered point is answered at once and drawn again before the repeat is
# let through (a small space can be exhausted; the trial is then answered from the journal, never trained again).
MAX_REDRAWS = 32


class ConstrainedOptunaSearch(OptunaSearch):
    """Tells Optuna which trials were infeasible or diverged, as a constraint value > 0 (feasible when <= 0).

    The constraint is set before the trial is told, so infeasible points stay out of the study's best trials while
    the sampler still learns their (worst-case) objective value.

    ``answered`` maps :func:`tuneall.journal.point_key` of each point already evaluated (the journal's records, on a
    resume) to its metrics. A suggestion of such a point is told to Optuna with the recorded answer at once and a new
    point is drawn in its place, so no trial is spent on a point already answered; a point that a running trial is
    training is drawn again too (told to Optuna as failed, ``duplicate_of_running``). ``redrawn`` counts both.
    """

    def __init__(self, *args, answered: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._answered: dict[tuple, dict] = dict(answered or {})
        self._configs: dict[str, dict] = {}
        self._running: dict[tuple, str] = {}  # point key -> the trial training it now
        self.redrawn = 0

    def suggest(self, trial_id: str):
        from optuna.trial import TrialState

        config = None
        for _ in range(MAX_REDRAWS):
            config = super().suggest(trial_id)
            if config is None:
                return None
            key = journal.point_key(config)
            known = self._answered.get(key)
            if trial_id in self._completed_trials or (known is None and key not in self._running):
                break
            ot_trial = self._ot_trials.pop(trial_id)
            if known is not None:
                self._tell(ot_trial, known)
            else:  # the same point is being trained by a trial running now: draw another one
                ot_trial.set_user_attr("duplicate_of_running", self._running[key])
                self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            self.redrawn += 1
        self._configs[trial_id] = config
        self._running.setdefault(journal.point_key(config), trial_id)
        return config

    def _tell(self, ot_trial, metrics: dict) -> None:
        from optuna.trial import TrialState

        names = self.metric if isinstance(self.metric, list) else [self.metric]
        values = [metrics.get(m) for m in names]
        if any(v is None for v in values):
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            return
        ot_trial.set_constraint("budget_feasible", float(metrics.get("constraint", 0.0)))
        self._ot_study.tell(ot_trial, values if isinstance(self.metric, list) else values[0])

    def on_trial_complete(self, trial_id, result=None, error=False):
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and result and trial_id not in self._completed_trials:
            ot_trial.set_constraint("budget_feasible", float(result.get("constraint", 0.0)))
        super().on_trial_complete(trial_id, result=result, error=error)
        config = self._configs.pop(trial_id, None)
        if config is not None and self._running.get(journal.point_key(config)) == trial_id:
            del self._running[journal.point_key(config)]
        if config is not None and result and not error and result.get("status") in ("ok", "diverged", "infeasible"):
            self._answered.setdefault(journal.point_key(config), dict(result))
