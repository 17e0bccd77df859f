"""Ray Tune's OptunaSearch, taught about infeasible trials and about what Optuna's own tools read. Imported lazily:
it pulls in ray.tune.

What the study holds, so that ``optuna.load_study``, ``study.trials_dataframe()`` and optuna-dashboard show a
tuneall search as it is: every allocation field as a parameter under its own name (``k``, ``width``, ... even when
the sampler drew it under another name or it is fixed in the space: see :func:`tuneall.tuning.define_by_run.record_params`),
the trial's metrics as user attributes, the objectives' names (``study.set_metric_names``) and the feasibility
constraint (under Optuna's named key and under the list key that optuna-dashboard 0.21 reads).

Points already answered: a suggestion of a point the journal (or this search) already answered is marked
(user attributes ``redrawn`` and ``repeat_of``) and failed at once, and a new point is drawn in its place, so no trial
is spent on it and the study's complete trials are exactly the trials that ran; a point that a running trial is
training is drawn again too. The new point is drawn at random (Optuna's RandomSampler, seeded from the study's
sampler seed and its trial count, so a resumed search draws the same), not by the study's own sampler: a failed
trial teaches TPE nothing, so once it proposes an answered point it proposes it again (measured: 10 TPE trials on a
21-point space made 54-83 failed redraws and let 0-2 repeats through after MAX_REDRAWS, spending those trials on
journal answers). The drawn trial records ``drawn_by`` = "random".

One objective: the study's value is the answer rule's score (:mod:`tuneall.reporting.choice`: the objective, exact ties
broken by inference cost, below 1e-9), shown under the objective's name, so ``study.best_trial`` is tuneall's
answer; the objective itself is a user attribute.
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
DRAWN_BY = "drawn_by"  # user attribute of a trial drawn at random in place of a repeat
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

    def __init__(self, *args, answered: dict | None = None, metric_names=None, objectives=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._objectives = tuple(objectives or ())  # for the answer rule's score of answers recorded without it
        self._answered: dict[tuple, dict] = dict(answered or {})
        self._configs: dict[str, dict] = {}
        self._running: dict[tuple, str] = {}  # point key -> the trial training it now
        self.redrawn = 0
        if self._ot_study is not None and self._metric is not None:
            names = list(metric_names or (self._metric if isinstance(self._metric, (list, tuple)) else [self._metric]))
            with warnings.catch_warnings():  # set_metric_names is marked experimental since Optuna 3.2
                warnings.simplefilter("ignore")
                self._ot_study.set_metric_names(names)
            self._ot_study.set_user_attr("constraints", [CONSTRAINT])

    def suggest(self, trial_id: str):
        from optuna.trial import TrialState

        config = None
        for attempt in range(MAX_REDRAWS + 1):
            with self._drawing(random=attempt > 0):
                config = super().suggest(trial_id)
            if attempt and trial_id in self._ot_trials:
                self._ot_trials[trial_id].set_user_attr(DRAWN_BY, "random")
            if config is None:
                return None
            key = journal.point_key(config)
            known = self._answered.get(key)
            if trial_id in self._completed_trials or (known is None and key not in self._running) \
                    or attempt == MAX_REDRAWS:  # exhausted: let the repeat through (answered from the journal)
                break
            ot_trial = self._ot_trials.pop(trial_id)
            if known is not None:  # not a trial that ran: marked and failed, so it is no complete duplicate
                ot_trial.set_user_attr(REDRAWN, "answered")
                ot_trial.set_user_attr("repeat_of", str(known.get("trial_id") or known.get("repeat_of") or ""))
                self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            else:  # the same point is being trained by a trial running now: draw another one
                ot_trial.set_user_attr("duplicate_of_running", self._running[key])
                ot_trial.set_user_attr(REDRAWN, "running")
                self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            self.redrawn += 1
        self._configs[trial_id] = config
        self._running.setdefault(journal.point_key(config), trial_id)
        return config

    @contextmanager
    def _drawing(self, random: bool) -> Iterator[None]:
        """The study's own sampler, or (``random``: a redraw) a RandomSampler seeded from the study's sampler seed
        and its trial count, so that a resumed search redraws the same points."""
        if not random or self._ot_study is None:
            yield
            return
        import optuna

        own = self._ot_study.sampler
        seed = (int(getattr(self, "sampler_seed", 0) or 0) * 1_000_003 + len(self._ot_study.trials)) % 2 ** 32
        self._ot_study.sampler = optuna.samplers.RandomSampler(seed=seed)
        try:
            yield
        finally:
            self._ot_study.sampler = own

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
