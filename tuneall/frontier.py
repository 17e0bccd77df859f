"""Trials table -> per-trial summary, Pareto frontier, best allocation per k and per width (pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tuneall.metrics import ENSEMBLE_METRICS

ALLOCATION_COLUMNS = ["family", "width", "depth", "k", "data_fraction", "lr", "momentum", "batch_size"]
PLAN_COLUMNS = ["params_per_member", "total_params", "steps", "train_flops", "inference_flops", "budget", "unit",
                "spent"]
# The frontier's objectives: ensemble accuracy up; inference cost (parameters, FLOPs) and training time down.
FRONTIER_OBJECTIVES = (("ensemble_acc_mean", "max"), ("total_params", "min"), ("inference_flops", "min"),
                       ("train_time_s", "min"))


def summarize_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: its allocation, plan and status, with mean / std / worst of each metric over repeats."""
    first = trials.groupby("trial_id", sort=False).first()
    keep = [c for c in ["status", "reason", "error", *ALLOCATION_COLUMNS, *PLAN_COLUMNS, "n_diverged",
                        "train_time_s", "wall_time_s"] if c in first]
    out = first[keep].copy()
    g = trials.groupby("trial_id", sort=False)
    for name, better in ENSEMBLE_METRICS.items():
        if name not in trials:
            continue
        out[f"{name}_mean"] = g[name].mean()
        out[f"{name}_std"] = g[name].std(ddof=1).fillna(0.0)
        out[f"{name}_worst"] = g[name].min() if better == "max" else g[name].max()
    out["repeats"] = g["repeat"].count()
    return out.reset_index()


def pareto_mask(df: pd.DataFrame, objectives=FRONTIER_OBJECTIVES) -> np.ndarray:
    """True for rows that no other row beats on every objective at once (and strictly on one)."""
    vals = np.column_stack([df[c].to_numpy(float) * (-1.0 if m == "max" else 1.0) for c, m in objectives])
    n = len(vals)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = np.all(vals <= vals[i], axis=1) & np.any(vals < vals[i], axis=1)
        mask[i] = not dominated.any()
    return mask


def frontier(summary: pd.DataFrame, objectives=FRONTIER_OBJECTIVES) -> pd.DataFrame:
    """The non-dominated trials among those that trained successfully, best accuracy first."""
    ok = summary[summary["status"] == "ok"].reset_index(drop=True)
    if ok.empty:
        return ok
    return ok[pareto_mask(ok, objectives)].sort_values("ensemble_acc_mean", ascending=False, ignore_index=True)


def best_allocation(summary: pd.DataFrame, metric: str = "ensemble_acc_mean") -> pd.Series | None:
    ok = summary[summary["status"] == "ok"]
    return None if ok.empty else ok.loc[ok[metric].idxmax()]


def best_per(summary: pd.DataFrame, by: str, metric: str = "ensemble_acc_mean") -> pd.DataFrame:
    """The best successful trial for each value of ``by`` (e.g. 'k' or 'width')."""
    ok = summary[summary["status"] == "ok"]
    if ok.empty:
        return ok
    return ok.loc[ok.groupby(by)[metric].idxmax()].sort_values(by, ignore_index=True)
