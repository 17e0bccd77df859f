"""Sampler hygiene: sample only architectures that some ensemble size can train, and a start-up count for TPE that
suits small trial budgets.

Feasible architectures. Every field of a point but k is its *architecture* (with the recipe, which can change the
step cost). Where a family's axes are all discrete, :func:`restrict` enumerates them through the trial factory
(``max_feasible_k``: the budget trains the architecture at the smallest k of the space) and keeps, per axis, only
values that occur in some feasible architecture: the *static* choices, fixed for the whole study, so Optuna's
distributions never change. Where feasibility is joint (width 4 feasible only at depth 1, say), a later axis is
sampled as ``<axis>_index``, the position among the values feasible given the axes already drawn, exactly as k is
sampled as ``k_index`` among the feasible ensemble sizes; the value itself is recorded under its own name. A
continuous recipe axis that no step cost reads (a learning-rate range, say: ``STEP_COST_RECIPE_FIELDS``) cannot make
an architecture infeasible: it is left out of the enumeration and sampled as is beside the restricted choices. A family
with any other continuous axis (width, depth, batch size, data fraction) is sampled as before (its infeasible draws
reach Optuna as infeasible trials).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from tuneall.planning.space import AXES, Choice, SearchSpace

MAX_ENUMERATED = 20000  # architectures per family enumerated through the factory at most


def tpe_startup(trials: int) -> int:
    """TPE's random start-up trials for a search of ``trials``: Optuna's default 10 makes any search of <= 10 trials
    plain random search; a quarter of the trials (3..10) leaves TPE most of a small budget."""
    return int(min(10, max(3, trials // 4)))


@dataclass
class FamilyChoices:
    """A family's architecture axes in sampling order: per axis the static values and whether it is drawn as an
    index among the values feasible given the earlier axes; ``feasible``: the feasible value tuples."""

    axes: list[str]
    values: dict[str, tuple]
    indexed: set[str] = field(default_factory=set)
    feasible: set[tuple] = field(default_factory=set)

    def given(self, prefix: tuple) -> tuple:
        """Values of the axis after ``prefix`` (values of self.axes[:len(prefix)]) that some feasible tuple has."""
        i = len(prefix)
        return tuple(sorted({t[i] for t in self.feasible if t[:i] == prefix}, key=_order))


def _order(v):
    return (v is not None, v if v is not None else 0)


def free_axis(name: str, axis) -> bool:
    """Whether an axis is sampled apart from the feasible architectures: a continuous range of a recipe field that no
    step cost reads (it changes no allocation's feasibility, and a range cannot be enumerated)."""
    from tuneall.core.config import RECIPE_FIELDS, STEP_COST_RECIPE_FIELDS

    return not isinstance(axis, Choice) and name in RECIPE_FIELDS and name not in STEP_COST_RECIPE_FIELDS


def _arch_axes(space: SearchSpace, fam: str) -> list[str]:
    """The axes that decide a family's feasible architectures (every one but k and the free ones)."""
    return [a for a in AXES if a != "k" and not free_axis(a, space.axis(a, fam))]


def restrict(space: SearchSpace, budget, info, feasible_fn=None) -> dict[str, FamilyChoices | None]:
    """family -> its :class:`FamilyChoices` (None: sampled unrestricted); families with no feasible architecture
    are left out. ``feasible_fn(point) -> bool`` defaults to the trial factory's verdict at the smallest k."""
    if space.designs:
        return {f: None for f in space.families}
    feasible_fn = feasible_fn or _factory_feasible(space, budget, info)
    out: dict[str, FamilyChoices | None] = {}
    for fam in space.families:
        axes = _arch_axes(space, fam)
        ax = {a: space.axis(a, fam) for a in axes}
        if not all(isinstance(x, Choice) for x in ax.values()):
            out[fam] = None
            continue
        combos = list(itertools.islice(itertools.product(*(ax[a].values for a in axes)), MAX_ENUMERATED + 1))
        if len(combos) > MAX_ENUMERATED:
            out[fam] = None
            continue
        ok = {c for c in combos if feasible_fn({"family": fam, **dict(zip(axes, c))})}
        if not ok:
            continue
        fc = FamilyChoices(axes, {a: tuple(v for v in ax[a].values if any(t[i] == v for t in ok))
                                  for i, a in enumerate(axes)}, feasible=ok)
        prefixes = {()}
        for i, a in enumerate(axes):
            if any(set(fc.given(p)) != set(fc.values[a]) for p in prefixes):
                fc.indexed.add(a)
            prefixes = {t[:i + 1] for t in ok}
        out[fam] = fc
    return out


def _factory_feasible(space: SearchSpace, budget, info):
    from tuneall.core.errors import ConfigError
    from tuneall.planning.factory import max_feasible_k
    from tuneall.planning.points import point_to_allocation

    def kmin(fam):
        axis = space.axis("k", fam)
        return min(axis.values) if isinstance(axis, Choice) else int(axis.low)

    def ok(point: dict) -> bool:
        alloc, train = point_to_allocation({**point, "k": 1})
        try:
            return max_feasible_k(alloc, budget, info, train) >= kmin(point["family"])
        except ConfigError:
            return False

    return ok


def sample(trial, fc: FamilyChoices, name_of) -> dict:
    """Draw a family's architecture with Optuna's ``trial`` from its restricted choices (``name_of(axis)``: the
    study parameter's name)."""
    point, prefix = {}, ()
    for a in fc.axes:
        name = name_of(a)
        if a in fc.indexed:
            vals = fc.given(prefix)
            v = vals[trial.suggest_int(f"{name}_index", 0, len(vals) - 1)] if len(vals) > 1 else vals[0]
        else:
            vals = fc.values[a]
            v = trial.suggest_categorical(name, list(vals)) if len(vals) > 1 else vals[0]
        point[a] = v
        prefix = (*prefix, v)
    return point


__all__ = ["tpe_startup", "FamilyChoices", "restrict", "sample", "free_axis", "MAX_ENUMERATED"]
