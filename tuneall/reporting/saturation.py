"""Whether a search's validation split can separate allocations at all, and what to do when it cannot.

Two failures make "the best allocation" meaningless although every trial ran: validation is **saturated** (the best
allocation makes no validation error, so every allocation that also makes none ties with it exactly and the choice
among them falls to the tie-break on cost), or it is **too small to separate** (most allocations lie within one
validation input, 1 / n_val, of the best). Either way the search says so, on stderr and in summary.md, with the
remedies: more validation data, a budget or dataset where the allocations differ.
"""

from __future__ import annotations

import math

CROWDED = 0.5  # a warning when at least this share of the allocations is within one validation input of the best


def validation_warning(summary, metric: str, n_val: int | None, mode: str = "max") -> str | None:
    """One line when ``metric`` (a validation accuracy column) cannot separate the allocations of ``summary``
    (the distinct, eligible trials), else None."""
    import pandas as pd

    if not metric.startswith("val_") or "acc" not in metric or mode != "max" or metric not in summary:
        return None
    vals = pd.to_numeric(summary[metric], errors="coerce").dropna()
    if len(vals) < 2 or not n_val:
        return None
    step = 1.0 / int(n_val)  # one validation input
    best = float(vals.max())
    at_best = int((vals >= best - 1e-12).sum())
    near = int((vals >= best - step + 1e-12).sum())
    remedy = ("more validation data (--val-fraction 0.2, or your own validation split), a smaller budget or a harder "
              "dataset where allocations differ (e.g. --dataset mnist1d)")
    if best >= 1.0 - 1e-12 and at_best > 1:
        return (f"validation is saturated: {at_best} of {len(vals)} allocations score {best:.4f} on {n_val} "
                f"validation inputs, so the answer among them is chosen by cost alone (the cheapest at inference); "
                f"to separate them: {remedy}")
    if near / len(vals) >= CROWDED and near > 2:
        return (f"validation is too small to separate: {near} of {len(vals)} allocations are within one validation "
                f"input (1/{n_val} = {step:.4f}) of the best ({best:.4f}); to separate them: {remedy}")
    return None


__all__ = ["validation_warning", "CROWDED"]
