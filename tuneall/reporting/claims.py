"""Evidence for the seeds' claims as they state them, from a sweep's cells table (pure pandas / numpy / scipy).

The seed examples (``examples/seed00*.py``) grade each claim through :mod:`tuneall.reporting.grading`; this module
builds the evidence those grades need when a claim is about a *picked* cell ("the best ensemble beats every single
model"), about a threshold (seed 001's EST), about spread and worst case over seeds (seed 000), or about which k is
optimal (seed 002), so that no claim is graded on a proxy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tuneall.reporting.analysis import (ensemble_switchover_threshold, repeat_values, summarize_cells,
                                        switchover_map)
from tuneall.reporting.grading import best_against


def _aligned(cells: pd.DataFrame, keys: list, metric: str) -> list[list[float]]:
    """Per-seed values of each cell in ``keys``, aligned on the union of their repeats (NaN where one lacks one)."""
    series = [repeat_values(cells, c, metric) for c in keys]
    repeats = sorted(set().union(*(s.index for s in series)))
    return [[float(s.get(r, math.nan)) for r in repeats] for s in series]


def best_against_cells(cells: pd.DataFrame, candidates: list[dict], rivals: list[dict], direction: str = "greater",
                       metric: str = "ensemble_acc") -> dict:
    """:func:`tuneall.reporting.grading.best_against` on cells of the cells table: the best candidate cell against
    every rival cell, paired over seeds, Bonferroni for the pick. Adds ``pick_cell`` and ``rival_cell``."""
    vals = _aligned(cells, [*candidates, *rivals], metric)
    out = best_against(vals[:len(candidates)], vals[len(candidates):], direction)
    return {**out, "pick_cell": candidates[out["pick"]], "rival_cell": rivals[out["rival"]]}


def sign_test(successes: int, trials: int) -> float:
    """One-sided p of at least ``successes`` of ``trials`` under a fair coin (claims read off several budgets)."""
    from scipy.stats import binom

    return float(binom.sf(successes - 1, trials, 0.5)) if trials else math.nan


def min_p_over(ps: list[float]) -> float:
    """A claim that holds "somewhere" among len(ps) places: Bonferroni on the smallest p."""
    ps = [p for p in ps if not math.isnan(p)]
    return min(1.0, len(ps) * min(ps)) if ps else math.nan


def p_best_by(cells: pd.DataFrame, rows: pd.DataFrame, by: str, metric: str = "ensemble_acc", n_boot: int = 2000,
              seed: int = 0) -> pd.Series:
    """P(the best cell of ``rows`` has this value of ``by``): a paired bootstrap over seeds, the best cell re-selected
    in each resample (seed 002's optimal k with its uncertainty). Seeds only: sweeps keep no per-example bits."""
    from tuneall.reporting.ties import bootstrap_best

    keys = [dict(r) for _, r in rows.iterrows()]
    vals = np.asarray(_aligned(cells, keys, metric), float)
    keep = np.isfinite(vals).all(axis=0)
    res = bootstrap_best(vals[:, keep][..., None], n_boot=n_boot, seed=seed)
    return pd.Series(res["p_best"], index=rows[by].to_numpy()).groupby(level=0).sum()


def _resample_cells(cells: pd.DataFrame, rng) -> pd.DataFrame:
    """The cells table with its repeats drawn with replacement (the same draw for every cell: paired)."""
    reps = np.sort(cells["repeat"].dropna().unique())
    draw = rng.choice(reps, size=len(reps), replace=True)
    parts = [cells[cells["repeat"] == r].assign(repeat=i) for i, r in enumerate(draw)]
    return pd.concat(parts, ignore_index=True)


def _est_steps(summary: pd.DataFrame, k: int, design: str) -> pd.Series:
    """EST in steps per total parameter count for one (k, design); +inf where the ensemble never takes over."""
    m = switchover_map(summary, k)
    if m.empty:
        return pd.Series(dtype=float)
    m = m[m["design"] == design]
    est = ensemble_switchover_threshold(m)
    est = est[est["axis"] == "steps at params"].set_index("params")["est_steps"]
    return est.fillna(np.inf)


def est_shift(cells: pd.DataFrame, k_small: int, k_large: int, design: str, n_boot: int = 200,
              seed: int = 0) -> dict:
    """Seed 001's "the EST moves to the right as k grows", measured on the EST itself.

    Per parameter count the EST (fewest steps from which the ensemble wins at every larger step count; not reached =
    beyond the grid) of ``k_large`` against ``k_small``; ``effect`` = (counts where it moved right - counts where it
    moved left) / counts compared. ``p``: the share of paired seed resamples (maps recomputed) with effect <= 0.
    Returns {effect, p, n_params, right, left, same, est_small, est_large}.
    """
    def measure(c: pd.DataFrame):
        s = summarize_cells(c)
        a, b = _est_steps(s, k_small, design), _est_steps(s, k_large, design)
        both = a.index.intersection(b.index)
        a, b = a[both], b[both]
        right, left = int((b > a).sum()), int((b < a).sum())
        return (right - left) / len(both) if len(both) else math.nan, right, left, a, b

    effect, right, left, a, b = measure(cells)
    rng = np.random.default_rng(seed)
    boot = [measure(_resample_cells(cells, rng))[0] for _ in range(n_boot)]
    boot = np.array([x for x in boot if not math.isnan(x)])
    p = float((boot <= 0).mean()) if len(boot) else math.nan
    return {"effect": effect, "p": p, "n_params": len(a), "right": right, "left": left,
            "same": len(a) - right - left, "est_small": a.to_dict(), "est_large": b.to_dict()}
