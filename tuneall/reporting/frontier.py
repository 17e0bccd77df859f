"""Trials table -> per-trial summary, Pareto frontier, best allocation per k and per width (pandas).

Everything that chooses (the default frontier's accuracy objective and order, the best allocation, best per k /
width) reads the validation metric (``val_ensemble_acc_mean``); a search's frontier follows its configured objectives
(:func:`frontier_objectives`), validation by default; test metrics ride along in every table. Tables written before
validation existed have no ``val_`` columns: they are chosen on test, as they were (:func:`choice_metric`).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tuneall.core.config import ALLOCATION_COLUMNS, OBJECTIVES, SPLIT_METRICS, VAL_PREFIX

PLAN_COLUMNS = ["params_per_member", "total_params", "steps", "train_flops", "inference_flops", "budget", "unit",
                "spent"]
COST_COLUMNS = ["time_per_step_s", "time_per_epoch_s", "epochs", "latency_ms_per_image", "peak_mem_mb", "mem_kind"]
# The default frontier: the choosing accuracy (validation) up, inference cost down. Training time is noisy wall clock:
# it is a reported column, an objective only when a search names it.
FRONTIER_OBJECTIVES = (("val_ensemble_acc_mean", "max"), ("inference_flops", "min"))
COST_OBJECTIVES = ("inference_flops", "total_params", "train_time_s")
TEST_METRIC, VAL_METRIC = "ensemble_acc_mean", "val_ensemble_acc_mean"


def frontier_objectives(objectives=None) -> tuple[tuple[str, str], ...]:
    """The frontier of a search: its chosen objectives, plus inference cost (FLOPs) if none of them is a cost.

    ``objectives``: (metric, mode) pairs as the search's config records them (``None``: the default)."""
    objs = tuple((str(m), str(d)) for m, d in (objectives or FRONTIER_OBJECTIVES[:1]))
    if not any(m in COST_OBJECTIVES for m, _ in objs):
        objs += (("inference_flops", "min"),)
    return objs


def choice_metric(summary: pd.DataFrame) -> str:
    """The column that chooses: validation accuracy, or test accuracy for tables made before validation existed."""
    return VAL_METRIC if VAL_METRIC in summary and summary[VAL_METRIC].notna().any() else TEST_METRIC


def choice_split(summary: pd.DataFrame) -> str:
    return "validation" if choice_metric(summary) == VAL_METRIC else "test"


def resolve_metric(summary: pd.DataFrame, metric: str) -> str:
    """The column a choice (frontier, Pareto figure) reads for ``metric``: its validation twin wherever the table has
    validation, even when an objective names the test column (a choice never reads test); the test column only for
    tables made before validation existed. Costs (FLOPs, parameters, time) have no twin and stay as they are."""
    if metric.startswith(VAL_PREFIX):
        return metric if choice_metric(summary) == VAL_METRIC else metric[len(VAL_PREFIX):]
    twin = VAL_PREFIX + metric
    return twin if twin in summary and summary[twin].notna().any() else metric


def summarize_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: its allocation, plan and status, with mean / std / worst of each metric over repeats."""
    first = trials.groupby("trial_id", sort=False).first()
    keep = [c for c in ["status", "reason", "error", *ALLOCATION_COLUMNS, *PLAN_COLUMNS, *COST_COLUMNS,
                        "n_diverged", "train_time_s", "wall_time_s", "member_steps_trained", "member_steps_reused",
                        "curve_json", "repeat_of", "trial_order"] if c in first]
    out = first[keep].copy()
    g = trials.groupby("trial_id", sort=False)
    for name, better in SPLIT_METRICS.items():
        if name not in trials:
            continue
        out[f"{name}_mean"] = g[name].mean()
        out[f"{name}_std"] = g[name].std(ddof=1).fillna(0.0)
        out[f"{name}_worst"] = g[name].min() if better == "max" else g[name].max()
    out["repeats"] = g["repeat"].count()
    return add_time_to_target(out.reset_index())


def add_time_to_target(summary: pd.DataFrame) -> pd.DataFrame:
    """Seed 001's time to accuracy: training time until the ensemble first reaches the best single model's accuracy.

    The target is the best k = 1 accuracy among the trials at the same budget; the time is read off the trial's
    anytime curve (ensemble accuracy at log-spaced steps) as steps x time per step x k (members one after another).
    """
    out = summary.copy()
    out["time_to_target_s"] = np.nan
    if "curve_json" not in out or "time_per_step_s" not in out:
        return out
    ok = out["status"] == "ok"
    singles = out[ok & (out["k"] == 1)]
    if singles.empty:
        return out
    target = singles["ensemble_acc_mean"].max()
    for i in out.index[ok]:
        curve = json.loads(out.at[i, "curve_json"]) if isinstance(out.at[i, "curve_json"], str) else []
        hit = next((step for step, acc in curve if acc >= target - 1e-12), None)
        if hit is not None:
            out.at[i, "time_to_target_s"] = hit * out.at[i, "time_per_step_s"] * out.at[i, "k"]
    return out


def pareto_mask(df: pd.DataFrame, objectives=FRONTIER_OBJECTIVES) -> np.ndarray:
    """True for rows that no other row beats on every objective at once (and strictly on one)."""
    vals = np.column_stack([df[resolve_metric(df, c)].to_numpy(float) * (-1.0 if m == "max" else 1.0)
                            for c, m in objectives])
    n = len(vals)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = np.all(vals <= vals[i], axis=1) & np.any(vals < vals[i], axis=1)
        mask[i] = not dominated.any()
    return mask


def _eligible(summary: pd.DataFrame) -> pd.DataFrame:
    """Trials that may be presented as a way to spend the budget: trained successfully and, where the report has
    flagged them (tuneall.reporting.ties.degenerate_mask), above chance."""
    ok = summary["status"] == "ok"
    if "degenerate" in summary:
        ok &= ~summary["degenerate"].astype(bool)
    return summary[ok]


def frontier(summary: pd.DataFrame, objectives=FRONTIER_OBJECTIVES) -> pd.DataFrame:
    """The non-dominated trials among those that trained successfully (and are not degenerate), best on the first
    objective first."""
    ok = _eligible(summary).reset_index(drop=True)
    objectives = tuple((resolve_metric(ok, m), d) for m, d in objectives)  # old tables: the test twin
    ok = ok.dropna(subset=[m for m, _ in objectives if m in ok]).reset_index(drop=True)
    if ok.empty:
        return ok
    first, mode = objectives[0]
    from tuneall.reporting.choice import cost_of, order  # the one rule: the answer is the first row

    cost = cost_of(objectives)
    return order(ok[pareto_mask(ok, objectives)], first, mode, cost).reset_index(drop=True)


def _rule(summary: pd.DataFrame, metric: str | None, objectives) -> tuple[str, str, str | None]:
    """(metric, mode, tie-break cost) of the answer rule (:mod:`tuneall.reporting.choice`) for this table."""
    from tuneall.reporting.choice import cost_of

    objs = frontier_objectives(objectives)
    if metric is None:
        metric, mode = resolve_metric(summary, objs[0][0]), objs[0][1]
    else:
        mode = OBJECTIVES.get(metric) or dict(objs).get(metric, "max")
    return metric, mode, cost_of(objs)


def best_allocation(summary: pd.DataFrame, metric: str | None = None, objectives=None) -> pd.Series | None:
    """The answer (:mod:`tuneall.reporting.choice`): the eligible trial best on the search's first objective
    (``objectives``; default validation accuracy), exact ties to the cheaper at inference, then the earlier trial."""
    from tuneall.reporting.choice import answer

    ok = _eligible(summary)
    return None if ok.empty else answer(ok, *_rule(ok, metric, objectives))


def best_per(summary: pd.DataFrame, by: str, metric: str | None = None, objectives=None) -> pd.DataFrame:
    """The best successful (non-degenerate) trial for each value of ``by`` (e.g. 'k' or 'width'), by the same rule
    as :func:`best_allocation`."""
    from tuneall.reporting.choice import order

    ok = _eligible(summary)
    if ok.empty:
        return ok
    ranked = order(ok, *_rule(ok, metric, objectives))
    return ranked.drop_duplicates(by).sort_values(by, ignore_index=True)
