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


def budget_label(unit: str | None) -> str:
    """The x axis of a budget: ``training budget C (param-steps)`` / ``(FLOPs)``."""
    return f"training budget C ({'FLOPs' if unit == 'flops' else 'param-steps'})"


MARKERS = "os^Dv<>ph*"


def _budget_axes(ax, unit: str | None, ylabel: str, title: str, ncol: int = 1) -> None:
    """The axes of a figure against the budget (log scale), as every such figure of a sweep draws them."""
    ax.set_xscale("log")
    ax.set_xlabel(budget_label(unit))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=ncol)


def crossover_figure(curves: pd.DataFrame, crossings: pd.DataFrame, path: Path, unit: str | None = None) -> Path | None:
    """Test accuracy (mean, std band, worst seed dotted) against C: one line per width (k = 1), one per k at its
    best width, each with its own marker and drawn thinner than the one before, so a line on top of another still
    shows both; every crossover that the sweep found marked with its bootstrap interval (or said absent)."""
    if curves.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    lines = list(curves.groupby("line", sort=False))
    for i, (line, g) in enumerate(lines):
        g = g.sort_values("budget")
        style = "-" if line.startswith("single") else "--"
        lw = 1.0 + 2.0 * (len(lines) - 1 - i) / max(1, len(lines) - 1)  # earlier lines wider: overlaps show
        (h,) = ax.plot(g["budget"], g["mean"], style, marker=MARKERS[i % len(MARKERS)], ms=4 + (len(lines) - i) * 0.6,
                       mfc="none", lw=lw, label=line, zorder=2 + i)
        ax.fill_between(g["budget"], g["mean"] - g["std"], g["mean"] + g["std"], color=h.get_color(), alpha=0.12)
        ax.plot(g["budget"], g["worst"], ":", color=h.get_color(), lw=1)
    crossed = crossings[crossings["status"] == "crosses"] if not crossings.empty else crossings
    lo, hi = ax.get_ylim()
    for j, (_, r) in enumerate(crossed.iterrows()):
        ax.axvline(r["crossover"], color="black", lw=1, ls="-.")
        if np.isfinite(r["lo"]) and np.isfinite(r["hi"]):
            ax.axvspan(r["lo"], r["hi"], color="grey", alpha=0.12)
        # Labels at staggered heights: two crossovers at one budget stay readable.
        ax.text(r["crossover"], lo + (hi - lo) * (0.02 + 0.3 * (j % 3)), f" crossover {r['larger']} > {r['smaller']}",
                rotation=90, fontsize=7, va="bottom")
    if crossed.empty:
        ax.text(0.01, 0.02, "no crossover within the budgets run", transform=ax.transAxes, fontsize=8, color="grey")
    _budget_axes(ax, unit, "test accuracy (mean ± std;\ndotted: worst seed)", "Size-compute crossover (test split)",
                 ncol=2)
    return _save(fig, path)


def switchover_figure(smap: pd.DataFrame, est: pd.DataFrame, path: Path) -> Path | None:
    """Seed 001's heat map per (k, design): tiles at (total parameters, steps per member) coloured by the ensemble's
    margin over the single network (blue: ensemble wins); the EST drawn as the lower edge of the winning region."""
    if smap.empty:
        return None
    panels = list(smap.groupby(["k", "design"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    lim = max(0.1, 100 * float(np.nanmax(np.abs(smap["margin"]))))  # in points, as the tiles print it
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
    cmap = plt.get_cmap("RdBu")
    lp_all = np.log10(np.sort(smap["total_params"].unique()))
    dx = np.min(np.diff(lp_all)) if len(lp_all) > 1 else 0.3
    for ax, ((k, design), m) in zip(axes[0], panels):
        lt = np.log10(np.sort(m["budget"].unique()))
        dy = np.min(np.diff(lt)) if len(lt) > 1 else 0.3  # at one P, steps are spaced like the budgets
        for _, r in m.iterrows():
            x, y = np.log10(r["total_params"]), np.log10(r["steps"])
            ax.add_patch(Rectangle((x - dx / 2, y - dy / 2), dx, dy, color=cmap(norm(100 * r["margin"]))))
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
        ax.set_xlabel("log10 total parameters (all members)")
        if ax is axes[0][0]:
            ax.set_ylabel("log10 steps per member (SGD steps)")
        ax.set_title(f"k = {k} ({design}; test split)", fontsize=10)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist(),
                 label="ensemble − single test accuracy (points)")
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
        ax.set_xlabel(f"total {axis} FLOPs" + (" per input (all members)" if axis == "inference" else
                                                " (all members, forward + backward)"))
        ax.set_ylabel("ensemble test accuracy\n(mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    axes[0].set_title("best width at each budget (test split)")
    axes[1].set_title("widths at the largest budget (test split)")
    return _save(fig, path)


EXTRAPOLATE_AT_MOST = 10.0  # the fit is drawn to this many times the largest budget run
FIT_PARAMS = 3  # err(C) = E + A C^-alpha: a fit from this many budgets or fewer is exactly determined


def frontier_figure(front: pd.DataFrame, extra: pd.DataFrame, hold: pd.DataFrame, path: Path,
                    unit: str | None = None) -> Path | None:
    """Best test accuracy per budget and design class (each class its own marker, "best" hollow and larger, so it
    never hides the class it equals), the fitted power law with its band where more budgets than its parameters
    were fitted, and the hold-out prediction of the largest budget where there is one (legend entries only for what
    is drawn)."""
    if front.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    names = [n for n in ("best", "single", "ensemble") if n in set(front["class"])]
    look = {"best": dict(marker="o", ms=11, mfc="none", mew=1.5), "single": dict(marker="s", ms=5),
            "ensemble": dict(marker="^", ms=5)}
    skipped = []
    for i, name in enumerate(names):
        f = front[front["class"] == name].sort_values("budget")
        ax.plot(f["budget"], f["acc"], ls="none", color=f"C{i}", label=f"{name} (measured)", **look[name])
        e = extra[extra["class"] == name].sort_values("budget") if not extra.empty else extra
        if not e.empty:  # drawn to 10x the largest budget at most: further is a guess, not a fit
            e = e[e["budget"] <= EXTRAPOLATE_AT_MOST * front["budget"].max()]
        if not e.empty and f["budget"].nunique() > FIT_PARAMS:
            ax.plot(e["budget"], e["predicted_acc"], "--" if name == "best" else "-", color=f"C{i}",
                    lw=2.5 if name == "best" else 1, zorder=1 if name == "best" else 2, label=f"{name} (fit)")
            ax.fill_between(e["budget"], e["acc_lo"], e["acc_hi"], color=f"C{i}", alpha=0.15)
        elif not e.empty:
            skipped.append(name)
        h = hold[(hold["class"] == name) & hold["predicted_acc"].notna()] if not hold.empty else hold
        for j, (_, r) in enumerate(h.iterrows()):
            ax.errorbar(r["held_out_budget"], r["predicted_acc"], yerr=[[max(0, r["predicted_acc"] - r["acc_lo"])],
                        [max(0, r["acc_hi"] - r["predicted_acc"])]], fmt="x", color=f"C{i}", capsize=3,
                        label=f"{name}: hold-out prediction of the largest budget" if j == 0 else None)
    ax.axvline(front["budget"].max(), color="grey", lw=0.8, ls=":")
    if skipped:
        ax.text(0.01, 0.02, f"fit not drawn for {', '.join(skipped)}: {front['budget'].nunique()} budgets for a "
                f"{FIT_PARAMS}-parameter law", transform=ax.transAxes, fontsize=7, color="grey")
    _budget_axes(ax, unit, "best test accuracy (mean over seeds)", "Compute-optimal frontier (test split)")
    return _save(fig, path)


def data_fraction_figure(table: pd.DataFrame, path: Path, unit: str | None = None) -> Path | None:
    """Seed 003: best accuracy against the budget, one line per data fraction."""
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for frac, g in table.groupby("data_fraction"):
        g = g.sort_values("budget")
        (h,) = ax.plot(g["budget"], g["mean"], marker="o", ms=3, label=f"data fraction {frac:g}")
        ax.fill_between(g["budget"], g["mean"] - g["std"], g["mean"] + g["std"], color=h.get_color(), alpha=0.15)
    _budget_axes(ax, unit, "best test accuracy (mean ± std)", "Compute-data trade-off (test split)")
    return _save(fig, path)
