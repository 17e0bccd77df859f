"""Ray Tune's OptunaSearch, taught about infeasible trials. Imported lazily: it pulls in ray.tune."""

from __future__ import annotations

from ray.tune.search.optuna import OptunaSearch


class ConstrainedOptunaSearch(OptunaSearch):
    """Tells Optuna which trials were infeasible or diverged, as a constraint value > 0 (feasible when <= 0).

    The constraint is set before the trial is told, so infeasible points stay out of the study's best trials while
    the sampler still learns their (worst-case) objective value.
    """

    def on_trial_complete(self, trial_id, result=None, error=False):
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and result and trial_id not in self._completed_trials:
            ot_trial.set_constraint("budget_feasible", float(result.get("constraint", 0.0)))
        super().on_trial_complete(trial_id, result=result, error=error)
