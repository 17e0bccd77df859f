"""The trial factory: the ONLY code path from a sampled point of a search space to a trial plan.

It counts P on the real module, derives the steps per member from the budget (steps are never sampled), refuses
infeasible points with the reason and the smallest budget that would make them feasible, and attaches the members'
seeds and the trial's resource request.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneall.core import budget as B
from tuneall.core.architecture import Architecture
from tuneall.data import DatasetInfo, dataset_info
from tuneall.core.errors import BudgetError, ConfigError
from tuneall.models import check_arch, param_count
from tuneall.models.flops import inference_flops, train_flops_per_step
from tuneall.core.config import Resources, TrainConfig  # noqa: F401  (Resources: re-exported)

SEED_STRIDE = 1000  # member i of repeat r has seed base + r * SEED_STRIDE + i
MAX_STEPS = 10**12  # SGD steps per member: a sanity bound (a million steps a second would take 12 days)


class Infeasible(BudgetError):
    """A point that the budget cannot train; carries the smallest budget that would make it feasible."""

    def __init__(self, message: str, min_budget: float):
        super().__init__(message)
        self.min_budget = min_budget


@dataclass(frozen=True)
class Allocation:
    """One way to spend C (the steps per member follow from it and the budget)."""

    family: str = "cnn3"
    width: float = 1.0
    depth: int | None = None  # None: the family's default depth
    k: int = 1  # ensemble size
    data_fraction: float = 1.0
    design: str | None = None  # seed 001's design class this allocation was derived from, if any


@dataclass(frozen=True)
class TrialPlan:
    allocation: Allocation
    budget: B.Budget
    dataset: str
    depth: int  # resolved depth
    params_per_member: int
    step_cost: int  # cost of one member step in the budget's unit
    steps: int  # per member, T = floor(C / (k x step_cost))
    train_flops: int  # forward+backward FLOPs of all members' training
    inference_flops: int  # forward FLOPs of the whole ensemble for one input
    spent: int  # budget used, in the budget's unit (<= C)
    train: TrainConfig
    seeds: tuple[tuple[int, ...], ...]  # seeds[repeat][member]

    @property
    def k(self) -> int:
        return self.allocation.k

    @property
    def total_params(self) -> int:
        return self.k * self.params_per_member

    def row(self) -> dict:
        """Flat description for tables (one source for the plan, trials and frontier tables)."""
        a = self.allocation
        return {
            "family": a.family,
            "width": a.width,
            "depth": self.depth,
            "k": a.k,
            "data_fraction": a.data_fraction,
            "design": a.design,
            "params_per_member": self.params_per_member,
            "total_params": self.total_params,
            "steps": self.steps,
            "train_flops": self.train_flops,
            "inference_flops": self.inference_flops,
            "budget": self.budget.value,
            "unit": self.budget.unit,
            "spent": self.spent,
            **self.train.optimiser_fields(),  # the recipe: optimizer, lr, momentum, weight decay, ...
        }


def _member_cost(arch: Architecture, budget: B.Budget, train: TrainConfig):
    """(P, training FLOPs per step, cost of one step in the budget's unit) of one member."""
    params = param_count(arch)
    step_flops = train_flops_per_step(arch, train.batch_size)
    return params, step_flops, B.step_cost(budget.unit, params, step_flops)


def max_feasible_k(
    allocation: Allocation, budget: B.Budget, dataset: str | DatasetInfo, train: TrainConfig = TrainConfig()
) -> int:
    """Largest k the budget can train for this architecture (allocation.k is ignored); 0 if none."""
    info = dataset if isinstance(dataset, DatasetInfo) else dataset_info(dataset)
    depth = check_arch(allocation.family, allocation.width, allocation.depth)
    arch = Architecture.for_data(allocation.family, allocation.width, depth, info)
    return B.max_k(budget, _member_cost(arch, budget, train)[2])


def make_trial_plan(
    allocation: Allocation,
    budget: B.Budget,
    dataset: str | DatasetInfo = "digits",
    train: TrainConfig = TrainConfig(),
    repeats: int = 1,
    base_seed: int = 0,
) -> TrialPlan:
    """Turn an allocation into a trial plan under ``budget``; raise :class:`Infeasible` if it cannot be trained."""
    info = dataset if isinstance(dataset, DatasetInfo) else dataset_info(dataset)
    a = allocation
    depth = check_arch(a.family, a.width, a.depth)
    if isinstance(a.k, bool) or not isinstance(a.k, int) or a.k < 1:
        raise ConfigError(f"ensemble size k must be an integer >= 1, but got k={a.k!r}")
    if not 0 < a.data_fraction <= 1:
        raise ConfigError(f"data_fraction must be in (0, 1], but got {a.data_fraction!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats (seeds) must be an integer >= 1, but got {repeats!r}")
    arch = Architecture.for_data(a.family, a.width, depth, info)  # a member's network
    params, step_flops, cost = _member_cost(arch, budget, train)
    steps = B.steps_per_member(budget, a.k, cost)
    if steps < budget.min_steps:
        need = B.min_feasible_budget(a.k, cost, budget.min_steps)
        raise Infeasible(
            f"{a.family} w={a.width:g} d={depth} k={a.k}: C={budget.value:.3g} gives {steps} steps per member, "
            f"below the minimum {budget.min_steps}; smallest feasible budget {need:.4g} {budget.unit}",
            need,
        )
    if steps > MAX_STEPS:  # no run takes this many steps; beyond it counts overflow the tables' integers
        raise BudgetError(
            f"budget {budget.value:.4g} {budget.unit} gives {a.family} w={a.width:g} d={depth} k={a.k} {steps:.3g} "
            f"steps per member, more than the {MAX_STEPS:.0e} any run could take; choose a budget of at most "
            f"{MAX_STEPS * a.k * cost:.3g} {budget.unit} for it")
    seeds = tuple(tuple(base_seed + r * SEED_STRIDE + i for i in range(a.k)) for r in range(repeats))
    return TrialPlan(
        allocation=a,
        budget=budget,
        dataset=info.name,
        depth=depth,
        params_per_member=params,
        step_cost=cost,
        steps=steps,
        train_flops=a.k * steps * step_flops,
        inference_flops=a.k * inference_flops(arch),
        spent=B.spent(a.k, cost, steps),
        train=train,
        seeds=seeds,
    )

