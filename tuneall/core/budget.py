"""Budget math: the ONLY place where a compute budget C becomes steps, feasibility and cost.

Units (see design.md):
- ``param-steps`` (seed 000): a member with P trainable parameters trained for T SGD steps costs P x T. An ensemble of
  k members splits C evenly, so each gets T = floor(C / (k x P)) steps and k x P x T <= C.
- ``flops`` (seed 002): a member costs F x T, where F is the forward + backward FLOPs of one step at the configured
  batch size, counted on the real module (:mod:`tuneall.models.flops`).

A minimum step count (seed 000: "we enforce a minimum number of optimization steps") makes an allocation infeasible
when the budget leaves its members fewer steps than that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tuneall.core.errors import BudgetError, ConfigError

UNITS = ("param-steps", "flops")
DEFAULT_UNIT = "param-steps"
DEFAULT_MIN_STEPS = 50


def parse_budget(value: object) -> float:
    """A budget from user input ('1e10', 3e7, ...): a positive finite number, else :class:`BudgetError`."""
    if isinstance(value, bool):
        raise BudgetError(f"budget must be a positive number such as 1e10, but got {value!r}")
    try:
        c = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BudgetError(f"budget must be a positive number such as 1e10, but got {value!r}") from None
    if not math.isfinite(c) or c <= 0:
        raise BudgetError(f"budget must be a positive finite number, but got {value!r}")
    return c


@dataclass(frozen=True)
class Budget:
    """A training compute budget C in ``unit``; allocations must give each member at least ``min_steps`` steps."""

    value: float
    unit: str = DEFAULT_UNIT
    min_steps: int = DEFAULT_MIN_STEPS

    def __post_init__(self):
        object.__setattr__(self, "value", parse_budget(self.value))
        if self.unit not in UNITS:
            raise ConfigError(f"unknown budget unit {self.unit!r}; valid: {', '.join(UNITS)}")
        if isinstance(self.min_steps, bool) or not isinstance(self.min_steps, int) or self.min_steps < 1:
            raise ConfigError(f"min_steps must be an integer >= 1, but got {self.min_steps!r}")

    def __str__(self) -> str:
        return f"{self.value:.3g} {self.unit}"


def step_cost(unit: str, params: int, train_flops_per_step: int | None = None) -> int:
    """Cost of one SGD step of one member in ``unit``: P, or forward+backward FLOPs at the batch size."""
    if unit == "param-steps":
        return int(params)
    if unit == "flops":
        if train_flops_per_step is None:
            raise ValueError("unit 'flops' needs train_flops_per_step")
        return int(train_flops_per_step)
    raise ConfigError(f"unknown budget unit {unit!r}; valid: {', '.join(UNITS)}")


def _check(k: int, cost: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"ensemble size k must be an integer >= 1, but got k={k!r}")
    if cost < 1:
        raise ValueError(f"step cost must be >= 1, but got {cost}")


def steps_per_member(budget: Budget, k: int, cost: int) -> int:
    """T = floor(C / (k x cost)): steps each of k members gets, each step costing ``cost``."""
    _check(k, cost)
    c = budget.value
    if c.is_integer():  # integer division is exact where float division could round up across an integer
        return int(c) // (k * cost)
    return math.floor(c / (k * cost))


def spent(k: int, cost: int, steps: int) -> int:
    """Compute actually used by k members of step cost ``cost`` trained ``steps`` steps each (<= C)."""
    return k * cost * steps


def is_feasible(budget: Budget, k: int, cost: int) -> bool:
    """Whether C leaves each of k members at least ``budget.min_steps`` steps."""
    return steps_per_member(budget, k, cost) >= budget.min_steps


def min_feasible_budget(k: int, cost: int, min_steps: int = DEFAULT_MIN_STEPS) -> int:
    """Smallest C for which k members of step cost ``cost`` each get ``min_steps`` steps."""
    _check(k, cost)
    return k * cost * min_steps


def max_k(budget: Budget, cost: int) -> int:
    """Largest ensemble size that C can train at ``min_steps`` steps per member (0 if even k = 1 does not fit)."""
    return max(0, steps_per_member(budget, 1, cost) // budget.min_steps)
