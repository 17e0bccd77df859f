"""Optuna's define-by-run over a search space: the architecture and settings first, then only the ensemble sizes
that fit the budget (feasibility is monotone in k), and every allocation field recorded as a trial param."""

from __future__ import annotations

from tuneall.core.config import RECIPE_FIELDS
from tuneall.core.errors import ConfigError
from tuneall.data import DatasetInfo, dataset_info
from tuneall.core.budget import Budget
from tuneall.planning.factory import max_feasible_k
from tuneall.planning.points import point_to_allocation
from tuneall.planning.space import AXES, Axis, Choice, SearchSpace
from tuneall.tuning.sampling import restrict, sample


def _constant(axis: Axis) -> bool:
    return isinstance(axis, Choice) and len(axis.values) == 1


def _suggest(trial, name: str, axis: Axis):
    """Sample one axis with Optuna; a one-value choice is a constant and is not sampled."""
    if isinstance(axis, Choice):
        if len(axis.values) == 1:
            return axis.values[0]
        return trial.suggest_categorical(name, list(axis.values))
    if axis.integer:
        return trial.suggest_int(name, int(axis.low), int(axis.high), log=axis.log)
    return trial.suggest_float(name, axis.low, axis.high, log=axis.log)


RECORDED = ("family", "width", "depth", "k", "data_fraction", "design", *RECIPE_FIELDS)


def record_params(trial, point: dict, sampled_as_is: frozenset = frozenset(),
                  constants: frozenset = frozenset()) -> None:
    """Every allocation field of ``point`` as a study parameter under its own name, for Optuna's tools.

    The sampler draws some fields under other names (``k_index``: the position of k among the feasible sizes;
    ``width_<family>`` in multi-family spaces) or not at all (a field fixed in the space). Each such field is recorded
    as a one-value distribution: Optuna returns its value without sampling, and ``study.trials_dataframe()``,
    ``trial.params`` and optuna-dashboard show ``k`` itself. A field whose recorded kind would clash with an earlier
    trial's (``sampled_as_is``: fields some family samples under their own name) goes to the user attributes, and so
    does a field that is one value in the whole space (``constants``): a constant is not a parameter.
    """
    for name in RECORDED:
        v = point.get(name)
        if name in trial.params or v is None:
            continue
        if name in sampled_as_is or name in constants:
            trial.set_user_attr(name, v)
            continue
        try:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                trial.suggest_categorical(name, [v])  # not sampled, so fixed for the whole space
            elif isinstance(v, int):
                trial.suggest_int(name, v, v)
            else:
                trial.suggest_float(name, float(v), float(v))
        except ValueError:  # Optuna: "Cannot set different distribution kind to the same parameter name"
            trial.set_user_attr(name, v)


def _record_k(trial, k: int, k_values: tuple) -> None:
    """k as a parameter over every k of the space (one distribution for the whole study), although the sampler drew
    its position among the feasible sizes (``k_index``): Optuna's importances and plots then read k itself."""
    from optuna.distributions import CategoricalDistribution

    if "k" in trial.params or k not in k_values:
        return
    dist = CategoricalDistribution(list(k_values))
    try:
        trial.storage.set_trial_param(trial._trial_id, "k", dist.to_internal_repr(k), dist)
    except ValueError:  # a distribution of k recorded otherwise earlier in this study: record_params does it
        pass


def _space_constants(space: SearchSpace) -> frozenset:
    """Fields that take one value in the whole space (every family): user attributes of a study, not parameters."""
    def value(key, fam):
        axis = space.axis(key, fam)
        return repr(axis.values) if _constant(axis) else None

    out = {key for key in AXES if value(key, space.families[0]) is not None
           and len({value(key, f) for f in space.families}) == 1}
    return frozenset(out | ({"family"} if len(space.families) == 1 else set()))


class DefineByRun:
    """Optuna define-by-run function for a space: architecture and settings first, then only the k that fit.

    Feasibility is monotone in k (more members, fewer steps each), so the feasible ensemble sizes are a prefix of the
    sorted choices, or a shortened range: sampling k last from that prefix never proposes an infeasible k. A point whose
    architecture cannot be trained even at the smallest k is still sampled over the full k axis and reaches Optuna as
    an infeasible trial (the trainable reports it so). A class, not a closure, so Ray can pickle the searcher.
    """

    def __init__(self, space: SearchSpace, budget: Budget, dataset: str | DatasetInfo):
        self.space, self.budget = space, budget
        self.info = dataset if isinstance(dataset, DatasetInfo) else dataset_info(dataset)
        multi = len(space.families) > 1
        # Only architectures some k can train (statically per study: Optuna's distributions stay fixed).
        self.choices = restrict(space, budget, self.info)

        def as_is(key, fam):  # sampled under its own name: not constant, not as an index
            fc = self.choices.get(fam)
            if fc is not None and key in fc.axes:
                return key not in fc.indexed and len(fc.values[key]) > 1
            return not _constant(space.axis(key, fam)) and not (key == "k" and isinstance(space.axis(key, fam),
                                                                                          Choice))  # k: as k_index

        self.sampled_as_is = frozenset(  # fields some family samples under their own (not a per-family) name
            key for key in AXES for fam in space.families
            if not (multi and key in space.per_family.get(fam, {})) and as_is(key, fam))
        # Fields that are one value in the whole space (e.g. the recipe, a fixed depth): user attributes, not params.
        self.constants = _space_constants(space)
        self.k_values = tuple(sorted({int(v) for f in space.families for v in getattr(space.axis("k", f), "values",
                                                                                       ())}))

    def __call__(self, trial) -> dict:
        space = self.space
        multi = len(space.families) > 1
        fam = _suggest(trial, "family", Choice(tuple(self.choices) or space.families))
        point = {"family": fam}
        fc = self.choices.get(fam)
        for key in AXES:  # without restricted choices every axis; with them, the free ones (a learning-rate range)
            if key == "k" or (fc is not None and key in fc.axes):
                continue
            name = f"{key}_{fam}" if multi and key in space.per_family.get(fam, {}) else key
            point[key] = _suggest(trial, name, space.axis(key, fam))
        if fc is not None:
            point.update(sample(trial, fc, lambda key: f"{key}_{fam}" if multi and key in space.per_family.get(
                fam, {}) else key))
        if space.designs:
            point["design"] = _suggest(trial, "design", Choice(space.designs))
            if point["design"] == "single":
                point["k"] = 1
                record_params(trial, point, self.sampled_as_is, self.constants)
                return point
            kmax = 10**9  # deq / weq members are derived from k; infeasible ones are reported as such
        else:
            alloc, train = point_to_allocation({**point, "k": 1})
            try:
                kmax = max_feasible_k(alloc, self.budget, self.info, train)
            except ConfigError:
                kmax = 0  # e.g. a depth this family cannot build: the trainable reports it as infeasible
        axis = space.axis("k", fam)
        if isinstance(axis, Choice):
            values = sorted(axis.values)
            n_ok = sum(v <= kmax for v in values)
            point["k"] = values[trial.suggest_int("k_index", 0, (n_ok or len(values)) - 1)] if len(values) > 1 \
                else values[0]
            if len(values) > 1:
                _record_k(trial, point["k"], self.k_values)
        else:
            high = min(int(axis.high), kmax) if kmax >= axis.low else int(axis.high)
            point["k"] = trial.suggest_int("k", int(axis.low), high, log=axis.log)
        record_params(trial, point, self.sampled_as_is, self.constants)
        return point


__all__ = ["DefineByRun", "record_params", "RECORDED"]
