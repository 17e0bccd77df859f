"""summary.md's Markdown pieces: values, tables and an allocation's name (one place, so every table and line of the
report names an allocation alike)."""

from __future__ import annotations

import math

import pandas as pd

from tuneall.core.progress import axes_text


def fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if v.is_integer() and abs(v) < 1e15:  # counts held in float columns (NaN elsewhere in the column)
            return str(int(v))
        return f"{v:.4g}"
    return str(v)


def md_table(df: pd.DataFrame, cols: list[str]) -> str:
    cols = [c for c in cols if c in df]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df[cols].itertuples(index=False)]
    return "\n".join(lines)


SHOW = ["family", "width", "depth", "k", "data_fraction", "optimizer", "params_per_member", "total_params", "steps",
        "val_ensemble_acc_mean", "val_ensemble_acc_std", "p_best", "ensemble_acc_mean", "ensemble_acc_std",
        "ensemble_acc_worst", "member_acc_mean_mean", "ensemble_nll_mean", "inference_flops", "train_time_s"]
COSTS = ["family", "width", "depth", "k", "val_ensemble_acc_mean", "ensemble_acc_mean", "time_per_step_s",
         "time_per_epoch_s",
         "time_to_target_s", "latency_ms_per_image", "peak_mem_mb", "inference_flops"]


def alloc_name(row, axes=()) -> str:
    """An allocation as the summary names it; ``axes``: the recipe fields the table varies (lr, ...), named too, so
    two allocations never read alike (:func:`tuneall.core.progress.varying_axes`)."""
    depth = "" if pd.isna(row.get("depth")) else f", depth {fmt(row['depth'])}"
    frac = "" if pd.isna(row.get("data_fraction")) or row.get("data_fraction") == 1 else \
        f", data {fmt(row['data_fraction'])}"
    return ", ".join([f"{row['family']} w={fmt(row['width'])}{depth}, k = {fmt(row['k'])}{frac}",
                      *axes_text(row, axes)])


def with_axes(cols: list[str], axes) -> list[str]:
    """A table's columns with the varied recipe fields after ``k`` (the allocation's other axes)."""
    extra = [a for a in axes if a not in cols]
    at = cols.index("k") + 1 if "k" in cols else len(cols)
    return [*cols[:at], *extra, *cols[at:]]


__all__ = ["fmt", "md_table", "SHOW", "COSTS", "alloc_name", "with_axes"]
