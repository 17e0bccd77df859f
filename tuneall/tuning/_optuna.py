"""Ray Tune's OptunaSearch, taught about infeasible trials and about what Optuna's own tools read. Imported lazily:
it pulls in ray.tune.

What the study holds, so that ``optuna.load_study``, ``study.trials_dataframe()`` and optuna-dashboard show a
tuneall search as it is: every allocation field as a parameter under its own name (``k``, ``width``, ... even when
the sampler drew it under another name or it is fixed in the space: see :func:`tuneall.tuning.define_by_run.record_params`),
the trial's metrics as user attributes, the objectives' names (``study.set_metric_names``) and the feasibility
constraint (under Optuna's named key and under the list key that optuna-dashboard 0.21 reads).

Points already answered: a suggestion of a point the journal (or this search) already answered is told to Optuna
with the recorded answer at once and a new point is drawn in its place, so no trial is spent on it; a point that a
running trial is training is drawn again too.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from typing import Iterator

from ray.tune.search.optuna import OptunaSearch

from tuneall.rundir import journal
from tuneall.core.config import REDRAWN

CONSTRAINT = "budget_feasible"  # > 0: infeasible under the budget, or diverged
# How many times a suggestion that repeats an answered point is answered at once and drawn again before the repeat is
# let through (a small space can be exhausted; the trial is then answered from the journal, never trained again).
MAX_REDRAWS = 32
# Result keys that are not worth a user attribute: Ray's bookkeeping and the long JSON columns.
_SKIP_ATTRS = ("curve_json", "repeats_json", "config", "done", "should_checkpoint", "node_id", "experiment_tag",
               "date", "hostname", "pid", "timestamp", "time_this_iter_s", "time_total_s", "training_iteration",
               "iterations_since_restore", "time_since_restore", "checkpoint_dir_name", "constraint")


def metric_attrs(result: dict) -> dict:
    """A trial's reported metrics as Optuna user attributes: finite numbers, short strings, nothing else."""
    out = {}
    for key, v in (result or {}).items():
        if key in _SKIP_ATTRS:
            continue
        if isinstance(v, bool) or (isinstance(v, (int, float)) and math.isfinite(v)):
            out[key] = v
        elif isinstance(v, str) and len(v) <= 500:
            out[key] = v
    return out


class ConstrainedOptunaSearch(OptunaSearch):
    """Tells Optuna which trials were infeasible or diverged, as a constraint value > 0 (feasible when <= 0), and
    records each trial's metrics as user attributes.

    The constraint is set before the trial is told, so infeasible points stay out of the study's best trials while
    the sampler still learns their (worst-case) objective value.
    """

    def __init__(self, *args, answered: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._answered: dict[tuple, dict] = dict(answered or {})
        self._configs: dict[str, dict] = {}
        self._running: dict[tuple, str] = {}  # point key -> the trial training it now
        self.redrawn = 0
        if self._ot_study is not None and self._metric is not None:
            names = list(self._metric) if isinstance(self._metric, (list, tuple)) else [self._metric]
            with warnings.catch_warnings():  # set_metric_names is marked experimental since Optuna 3.2
                warnings.simplefilter("ignore")
                self._ot_study.set_metric_names(names)
            self._ot_study.set_user_attr("constraints", [CONSTRAINT])

    def suggest(self, trial_id: str):
        from optuna.trial import TrialState

        config = None
        for attempt in range(MAX_REDRAWS + 1):
            config = super().suggest(trial_id)
            if config is None:
                return None
            key = journal.point_key(config)
            known = self._answered.get(key)
            if trial_id in self._completed_trials or (known is None and key not in self._running) \
                    or attempt == MAX_REDRAWS:  # exhausted: let the repeat through (answered from the journal)
                break
            ot_trial = self._ot_trials.pop(trial_id)
            if known is not None:
                ot_trial.set_user_attr(REDRAWN, "answered")  # not a trial that ran: the history plot hides it
                self._tell(ot_trial, known)
            else:  # the same point is being trained by a trial running now: draw another one
                ot_trial.set_user_attr("duplicate_of_running", self._running[key])
                ot_trial.set_user_attr(REDRAWN, "running")
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
        _record(ot_trial, metrics)
        self._ot_study.tell(ot_trial, values if isinstance(self.metric, list) else values[0])

    def on_trial_complete(self, trial_id, result=None, error=False):
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and trial_id not in self._completed_trials and result:
            _record(ot_trial, result)
        super().on_trial_complete(trial_id, result=result, error=error)
        config = self._configs.pop(trial_id, None)
        if config is not None and self._running.get(journal.point_key(config)) == trial_id:
            del self._running[journal.point_key(config)]
        if config is not None and result and not error and result.get("status") in ("ok", "diverged", "infeasible"):
            self._answered.setdefault(journal.point_key(config), dict(result))


def _record(ot_trial, result: dict) -> None:
    """The constraint (before the trial is told) and the metrics of a result, on its Optuna trial."""
    value = float(result.get("constraint", 0.0))
    ot_trial.set_constraint(CONSTRAINT, value)
    # optuna-dashboard 0.21 reads the list key of Optuna < 4 (system attr "constraints"), not the named keys: write
    # it too (Optuna reads both; the values agree).
    ot_trial.storage.set_trial_system_attr(ot_trial._trial_id, "constraints", [value])
    for key, v in metric_attrs(result).items():
        ot_trial.set_user_attr(key, v)


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines ("A new study created ...") off for a search: tuneall prints its own per trial."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
