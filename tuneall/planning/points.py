"""Planning without training: every point of a space through the trial factory, feasible or with its reason."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from tuneall.core.budget import Budget
from tuneall.data import DatasetInfo, dataset_info
from tuneall.core.errors import BudgetError, ConfigError
from tuneall.planning.factory import Allocation, Infeasible, TrialPlan, make_trial_plan
from tuneall.planning.space import AXES, SearchSpace, grid
from tuneall.core.config import Recipe, TrainConfig


def _base(point: dict) -> dict:
    """The single network a design-class point was derived from (empty for plain points)."""
    return {"base_width": point["width"], "base_depth": point.get("depth")} if point.get("design") else {}


def point_to_allocation(point: dict) -> tuple[Allocation, TrainConfig]:
    """Split a search-space point into the allocation and the optimiser settings."""
    alloc = Allocation(
        family=point["family"], width=float(point["width"]), depth=point.get("depth"), k=int(point["k"]),
        data_fraction=float(point.get("data_fraction", 1.0)), design=point.get("design"),
    )
    train = TrainConfig.from_recipe(Recipe.of(point))  # the point's settings, the defaults for the rest
    return alloc, train


def resolve_design(alloc: Allocation, info: DatasetInfo) -> Allocation:
    """For a seed-001 point, the members' architecture: the single network itself, or its deq / weq ensemble."""
    if alloc.design in (None, "single"):
        return replace(alloc, k=1) if alloc.design else alloc
    from tuneall.models import Architecture
    from tuneall.planning.design_classes import design_classes

    classes = design_classes(Architecture.for_data(alloc.family, alloc.width, alloc.depth, info), alloc.k)
    member = next(c for c in classes if c.name == alloc.design)
    return replace(alloc, width=member.width, depth=member.depth, k=member.k)


def plan_point(point: dict, budget: Budget, info: DatasetInfo, **kw) -> TrialPlan:
    """A search-space point through the trial factory (design classes resolved first)."""
    alloc, train = point_to_allocation(point)
    return make_trial_plan(resolve_design(alloc, info), budget, info, train, **kw)


def check_space_families(space: SearchSpace, info: DatasetInfo) -> None:
    """Every user family of ``space`` built once and run on a dummy batch of the data's shape, at each of its grid's
    (width, depth): ConfigError naming the factory before any trial when it fails to build, returns a non-module or
    outputs the wrong shape."""
    from tuneall.models import Architecture, check_family, get_family

    for fam in space.families:
        if not get_family(fam).user:
            continue
        for width in space.axis("width", fam).grid(space.grid_points):
            for depth in space.axis("depth", fam).grid(space.grid_points):
                check_family(Architecture.for_data(fam, width, depth, info))


def plan_space(space: SearchSpace, budget: Budget,
               dataset: "str | DatasetInfo" = "digits") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(feasible, infeasible) tables for every grid point of ``space`` under ``budget``.

    Raises :class:`BudgetError` naming the smallest feasible budget when nothing is feasible.
    """
    info = dataset if isinstance(dataset, DatasetInfo) else dataset_info(dataset)
    check_space_families(space, info)
    feasible, infeasible = [], []
    min_need: tuple[float, str] | None = None
    seen = set()
    for point in grid(space):
        key = tuple(sorted(point.items(), key=lambda kv: kv[0]))
        if key in seen:
            continue
        seen.add(key)
        try:
            feasible.append({**plan_point(point, budget, info).row(), **_base(point)})
        except Infeasible as e:
            infeasible.append({**point, "reason": str(e), "min_budget": e.min_budget})
            label = f"{point['family']} w={point['width']:g} k={point['k']}"
            if min_need is None or e.min_budget < min_need[0]:
                min_need = (e.min_budget, label)
        except ConfigError as e:  # e.g. a depth that one of the space's families cannot build
            infeasible.append({**point, "reason": str(e), "min_budget": float("nan")})
    if not feasible:
        hint = f"; the smallest feasible budget is {min_need[0]:.4g} {budget.unit} ({min_need[1]})" if min_need else ""
        raise BudgetError(
            f"budget {budget.value:.4g} {budget.unit} is too small for any allocation in space {space.name!r} "
            f"with at least {budget.min_steps} steps per member{hint}"
        )
    sort = ["family", "width", "depth", "k", "data_fraction"]
    f = pd.DataFrame(feasible).sort_values(sort, na_position="first", ignore_index=True)
    i = pd.DataFrame(infeasible, columns=["family", *AXES, "reason", "min_budget"])
    return f, i
