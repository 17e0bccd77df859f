"""The one rule that names a search's answer (documented in docs/design.md, "One answer").

Rule: the answer is the eligible trial (trained, above chance, not a repeat) best on the search's first objective
(validation accuracy by default); exact ties on it go to the cheaper allocation on the frontier's cost (inference
FLOPs by default), so the answer is on its own Pareto frontier and is the frontier table's first row; what is still
tied goes to the earlier trial (the order the search suggested them: the journal's ``trial_order``, which is Ray's
trial creation order and Optuna's trial-number order; where a table has none, the number ending a trial id).

Every reader follows it: the final line, summary.md, ``frontier.csv`` row 0 (``tuneall.search(...).iloc[0]``), the
saved ensemble, and, through the score of :mod:`tuneall.core.choice` that every trial reports, Optuna's
``study.best_trial``, Ray's ``get_best_result()`` and both live "best" lines. The statistical tie set
(:mod:`tuneall.reporting.ties`) does not move the answer: it names the allocations the answer is not separated from
(:func:`tied_alternatives`), for a user who prefers, say, the cheapest of them.
"""

from __future__ import annotations

import math
import re

from tuneall.core.choice import SCORE, cost_of, score


def _trial_order(trial_id) -> tuple:
    """Ray's trial order: the number after the last underscore of its id (``abc12_00003`` -> 3)."""
    m = re.search(r"_(\d+)$", str(trial_id))
    return (0, int(m.group(1)), "") if m else (1, 0, str(trial_id))


def order(table, metric: str, mode: str = "max", cost: str | None = "inference_flops"):
    """``table`` (one row per trial) sorted by the rule, the answer first."""
    import pandas as pd

    if table.empty:
        return table
    vals = pd.to_numeric(table[metric], errors="coerce")
    costs = pd.to_numeric(table[cost], errors="coerce") if cost and cost in table else None
    keys = [score(v, None if costs is None else costs.iloc[i], mode) for i, v in enumerate(vals)]
    keys = [(-k if mode == "max" else k) if math.isfinite(k) else math.inf for k in keys]
    ids = table["trial_id"] if "trial_id" in table else pd.Series(range(len(table)), index=table.index)
    # The search's suggestion order where the table has it (the journal's); a trial without one comes after.
    suggested = (pd.to_numeric(table["trial_order"], errors="coerce").fillna(math.inf).tolist()
                 if "trial_order" in table else [math.inf] * len(table))
    rank = sorted(range(len(table)), key=lambda i: (keys[i], suggested[i], _trial_order(ids.iloc[i]), i))
    return table.iloc[rank]


def answer(table, metric: str, mode: str = "max", cost: str | None = "inference_flops"):
    """The row the rule names (None for an empty table)."""
    ranked = order(table, metric, mode, cost)
    return None if ranked.empty else ranked.iloc[0]


def tied_alternatives(ties, chosen_id: str) -> list[str]:
    """Trial ids the tie set (:func:`tuneall.reporting.ties.tie_set`'s table) reports tied with the best, other than
    the answer ``chosen_id``, in the tie set's order."""
    if ties is None or ties.empty:
        return []
    return [str(t) for t in ties.loc[ties["tied"].astype(bool), "trial_id"] if str(t) != str(chosen_id)]


__all__ = ["SCORE", "cost_of", "order", "answer", "tied_alternatives"]
