"""The answer rule's score: a trial's objective with the rule's tie-break folded in (pure Python).

The rule (:mod:`tuneall.reporting.choice`): the answer is the eligible trial best on the search's first objective;
exact ties go to the cheaper allocation on the frontier's cost (inference FLOPs unless an objective names another
cost), then to the earlier trial. Optuna's ``study.best_trial`` and Ray's ``get_best_result()`` / live "Current best
trial" each keep the first of equal values and know nothing of cost, so every trial reports :data:`SCORE` =
objective -/+ :data:`TIE_EPS` x (a cost term in [0, 1) increasing with the cost), and Ray's TuneConfig, Optuna's
objective, tuneall's live "best" and its tables all rank by that one number. The term is below 1e-9, under any real
accuracy difference (one input of 1e9), so it only ever orders exact ties; the objective itself is reported unchanged.
"""

from __future__ import annotations

import math
import numbers

from tuneall.core.config import DEFAULT_OBJECTIVE

SCORE = "choice_score"  # what Ray and Optuna rank by
TIE_EPS = 1e-9
ROUND = 12  # objectives are compared to 12 decimals: float summation order never breaks a tie
COSTS = ("inference_flops", "total_params", "train_time_s")  # tuneall.reporting.frontier.COST_OBJECTIVES


def cost_of(objectives) -> str | None:
    """The cost that breaks exact ties: the first cost among ``objectives`` ((metric, mode) pairs), else inference
    FLOPs (the frontier's default cost); None when the first objective is itself that cost."""
    objs = [tuple(o) for o in objectives]
    cost = next((m for m, _ in objs if m in COSTS), "inference_flops")
    return None if objs and cost == objs[0][0] else cost


def score(value, cost, mode: str = "max") -> float:
    """``value`` with the tie-break folded in: among equal values, the lower ``cost`` ranks higher."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return float("nan")
    if not math.isfinite(v):
        return v
    term = 0.0
    # numbers.Real: numpy integers too (a pandas column of FLOPs), which are no Python int
    if isinstance(cost, numbers.Real) and not isinstance(cost, bool) and math.isfinite(cost) and cost >= 0:
        term = min(0.999, math.log10(1.0 + float(cost)) / 25.0)  # costs up to 1e25 stay below 1
    v = round(v, ROUND)
    return v - TIE_EPS * term if mode == "max" else v + TIE_EPS * term


def score_metrics(metrics: dict, objectives) -> float:
    """:func:`score` of a trial's reported ``metrics`` (``objectives``: the search's (metric, mode) pairs)."""
    objs = [tuple(o) for o in objectives] or [(DEFAULT_OBJECTIVE, "max")]  # no objectives given: the default
    metric, mode = objs[0]
    cost = cost_of(objs)
    return score(metrics.get(metric, float("nan")), metrics.get(cost) if cost else None, mode)


__all__ = ["SCORE", "TIE_EPS", "COSTS", "cost_of", "score", "score_metrics"]
