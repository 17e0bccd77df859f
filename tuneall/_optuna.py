"""Ray Tune's OptunaSearch, taught about infeasible trials. Imported lazily: it pulls in ray.tune."""

from __future__ import annotations

from ray.tune.search.optuna import OptunaSearch


REPORTED = ("val_ensemble_acc_mean", "val_ensemble_acc_std", "val_ensemble_nll_mean", "ensemble_acc_mean",
            "ensemble_acc_std", "ensemble_nll_mean")


class ConstrainedOptunaSearch(OptunaSearch):
    """Tells Optuna which trials were infeasible or diverged, as a constraint value > 0 (feasible when <= 0).

    The constraint is set before the trial is told, so infeasible points stay out of the study's best trials while
    the sampler still learns their (worst-case) objective value.
    """

    def on_trial_complete(self, trial_id, result=None, error=False):
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and result and trial_id not in self._completed_trials:
            ot_trial.set_constraint("budget_feasible", float(result.get("constraint", 0.0)))
            # The study carries both splits: the objective chooses on validation, test is recorded beside it.
            for name in REPORTED:
                value = result.get(name)
                if isinstance(value, (int, float)) and value == value:
                    ot_trial.set_user_attr(name, float(value))
        super().on_trial_complete(trial_id, result=result, error=error)
