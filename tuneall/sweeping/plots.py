"""Figures of a sweep (matplotlib, Agg backend): crossover, switchover map, accuracy vs FLOPs, frontier fit."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def crossover_figure(curves: pd.DataFrame, crossings: pd.DataFrame, path: Path) -> Path | None:
    """Accuracy (mean, std band, worst seed dotted) against C: one line per width (k = 1), one per k at its best
    width; the crossover budgets of the single models with their bootstrap interval."""
    if curves.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, (line, g) in enumerate(curves.groupby("line", sort=False)):
        g = g.sort_values("budget")
        style = "-" if line.startswith("single") else "--"
        (h,) = ax.plot(g["budget"], g["mean"], style, marker="o", ms=3, label=line)
        ax.fill_between(g["budget"], g["mean"] - g["std"], g["mean"] + g["std"], color=h.get_color(), alpha=0.15)
        ax.plot(g["budget"], g["worst"], ":", color=h.get_color(), lw=1)
    if not crossings.empty:
        widths = crossings[(crossings["status"] == "crosses") & crossings["smaller"].str.startswith("w=")]
        for _, r in widths.iterrows():
            ax.axvline(r["crossover"], color="grey", lw=0.8)
            if np.isfinite(r["lo"]) and np.isfinite(r["hi"]):
                ax.axvspan(r["lo"], r["hi"], color="grey", alpha=0.08)
            ax.text(r["crossover"], ax.get_ylim()[0], f" {r['larger']}>{r['smaller']}", rotation=90, fontsize=7,
                    va="bottom", color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("training budget C")
    ax.set_ylabel("test accuracy (mean ± std; dotted: worst seed)")
    ax.set_title("Size-compute crossover")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def switchover_figure(smap: pd.DataFrame, est: pd.DataFrame, path: Path) -> Path | None:
    """Seed 001's heat map per (k, design): tiles at (total parameters, steps per member) coloured by the ensemble's
    margin over the single network (blue: ensemble wins); the EST drawn as the lower edge of the winning region."""
    if smap.empty:
        return None
    panels = list(smap.groupby(["k", "design"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    lim = max(1e-3, float(np.nanmax(np.abs(smap["margin"]))))
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
    cmap = plt.get_cmap("RdBu")
    lp_all = np.log10(np.sort(smap["total_params"].unique()))
    dx = np.min(np.diff(lp_all)) if len(lp_all) > 1 else 0.3
    for ax, ((k, design), m) in zip(axes[0], panels):
        lt = np.log10(np.sort(m["budget"].unique()))
        dy = np.min(np.diff(lt)) if len(lt) > 1 else 0.3  # at one P, steps are spaced like the budgets
        for _, r in m.iterrows():
            x, y = np.log10(r["total_params"]), np.log10(r["steps"])
            ax.add_patch(Rectangle((x - dx / 2, y - dy / 2), dx, dy, color=cmap(norm(r["margin"]))))
            ax.text(x, y, f"{100 * r['margin']:+.1f}", ha="center", va="center", fontsize=6)
        e = est[(est["k"] == k) & (est["design"] == design) & (est["axis"] == "steps at params")] \
            if not est.empty else est
        if not e.empty:
            e = e.dropna(subset=["est_steps"]).sort_values("params")
            xs, ys = np.log10(e["params"].to_numpy()), np.log10(e["est_steps"].to_numpy()) - dy / 2
            # The threshold is the lower edge of each column's winning tiles, joined across neighbouring columns.
            ax.hlines(ys, xs - dx / 2, xs + dx / 2, color="k", lw=2.5, label="EST")
            for i in range(len(xs) - 1):
                if xs[i + 1] - xs[i] <= dx * 1.01:
                    ax.vlines(xs[i] + dx / 2, ys[i], ys[i + 1], color="k", lw=2.5)
            if len(xs):
                ax.legend(fontsize=7, loc="upper right")
        ax.set_xlim(lp_all.min() - dx, lp_all.max() + dx)
        ys = np.log10(m["steps"])
        ax.set_ylim(ys.min() - dy, ys.max() + dy)
        ax.set_xlabel("log10 total parameters")
        if ax is axes[0][0]:
            ax.set_ylabel("log10 steps per member")
        ax.set_title(f"k = {k} ({design})", fontsize=10)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist(),
                 label="ensemble − single accuracy (tiles: points)")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def flops_figure(curves: pd.DataFrame, path: Path) -> Path | None:
    """Seed 002: accuracy against total training FLOPs (best width per budget) and total inference FLOPs (widths at
    the largest budget), one curve per k; solid arithmetic mean, dashed geometric mean."""
    if curves.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    colors = {k: f"C{i}" for i, k in enumerate(sorted(curves["k"].unique()))}
    styles = {"mean": "-", "geometric": "--", "vote": ":"}
    for ax, (axis, x) in zip(axes, (("train", "train_flops"), ("inference", "inference_flops"))):
        for (rule, k), g in curves[curves["axis"] == axis].groupby(["rule", "k"]):
            g = g.sort_values(x)
            ax.plot(g[x], g["mean"], styles.get(rule, "-"), marker="o", ms=3, color=colors[k],
                    label=f"k={k} ({rule})")
        ax.set_xscale("log")
        ax.set_xlabel(f"total {axis} FLOPs" + (" (per input)" if axis == "inference" else ""))
        ax.set_ylabel("ensemble test accuracy (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    axes[0].set_title("best width at each budget")
    axes[1].set_title("widths at the largest budget")
    return _save(fig, path)


def frontier_figure(front: pd.DataFrame, extra: pd.DataFrame, hold: pd.DataFrame, path: Path) -> Path | None:
    """Best accuracy per budget and design class, the fitted power law with its band (extended beyond the largest
    budget), and the hold-out prediction of the largest budget."""
    if front.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    names = [n for n in ("best", "single", "ensemble") if n in set(front["class"])]
    for i, name in enumerate(names):
        f = front[front["class"] == name].sort_values("budget")
        ax.plot(f["budget"], f["acc"], "o", color=f"C{i}", label=f"{name} (measured)")
        e = extra[extra["class"] == name].sort_values("budget") if not extra.empty else extra
        if not e.empty:
            ax.plot(e["budget"], e["predicted_acc"], "-", color=f"C{i}", lw=1, label=f"{name} (fit)")
            ax.fill_between(e["budget"], e["acc_lo"], e["acc_hi"], color=f"C{i}", alpha=0.15)
        h = hold[hold["class"] == name] if not hold.empty else hold
        for _, r in h.iterrows():
            ax.errorbar(r["held_out_budget"], r["predicted_acc"], yerr=[[max(0, r["predicted_acc"] - r["acc_lo"])],
                        [max(0, r["acc_hi"] - r["predicted_acc"])]], fmt="x", color=f"C{i}", capsize=3)
    ax.axvline(front["budget"].max(), color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("training budget C (x: hold-out prediction of the largest budget)")
    ax.set_ylabel("best test accuracy")
    ax.set_title("Compute-optimal frontier and saturating power-law fit")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def data_fraction_figure(table: pd.DataFrame, path: Path) -> Path | None:
    """Seed 003: best accuracy against the budget, one line per data fraction."""
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for frac, g in table.groupby("data_fraction"):
        g = g.sort_values("budget")
        (h,) = ax.plot(g["budget"], g["mean"], marker="o", ms=3, label=f"data fraction {frac:g}")
        ax.fill_between(g["budget"], g["mean"] - g["std"], g["mean"] + g["std"], color=h.get_color(), alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("training budget C")
    ax.set_ylabel("best test accuracy (mean ± std)")
    ax.set_title("Compute-data trade-off")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)
