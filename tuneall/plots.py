"""Matplotlib figures of a results directory (Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def accuracy_vs_k(summary: pd.DataFrame, path: Path) -> Path:
    ok = summary[summary["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for (fam, width), g in ok.groupby(["family", "width"]):
        g = g.groupby("k", as_index=False)[["ensemble_acc_mean", "ensemble_acc_std"]].max().sort_values("k")
        ax.errorbar(g["k"], g["ensemble_acc_mean"], yerr=g["ensemble_acc_std"], marker="o", capsize=3,
                    label=f"{fam} w={width:g}")
    ax.set_xlabel("ensemble size k")
    ax.set_ylabel("ensemble test accuracy (mean ± std over seeds)")
    ax.set_title(f"Accuracy vs k at C = {summary['budget'].iloc[0]:.3g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pareto_scatter(summary: pd.DataFrame, front: pd.DataFrame, path: Path, x: str = "inference_flops") -> Path:
    ok = summary[summary["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(6, 4))
    sc = ax.scatter(ok[x], ok["ensemble_acc_mean"], c=ok["k"], cmap="viridis", s=30, label="trials")
    fig.colorbar(sc, ax=ax, label="k")
    if not front.empty:
        f = front.sort_values(x)
        # The frontier in this 2-D projection: the best accuracy reachable at or below each cost.
        ax.step(f[x], f["ensemble_acc_mean"].cummax(), where="post", color="red", label="frontier")
        ax.scatter(f[x], f["ensemble_acc_mean"], facecolors="none", edgecolors="red", s=80)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels collide on short ranges
    ax.set_xlabel(x.replace("_", " ") + " (whole ensemble)")
    ax.set_ylabel("ensemble test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def optimisation_history(optuna_trials: pd.DataFrame, path: Path) -> Path | None:
    col = "value" if "value" in optuna_trials else "values_0" if "values_0" in optuna_trials else None
    if col is None or optuna_trials[col].dropna().empty:
        return None
    t = optuna_trials.sort_values("number")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(t["number"], t[col], s=20, label="trial")
    ax.plot(t["number"], t[col].cummax(), color="red", label="best so far")
    ax.set_xlabel("Optuna trial")
    ax.set_ylabel("objective (" + col + ")")
    ax.set_title("Optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_figures(out: Path, summary: pd.DataFrame, front: pd.DataFrame) -> list[Path]:
    if (summary["status"] == "ok").sum() == 0:
        return []
    figs = [accuracy_vs_k(summary, out / "accuracy_vs_k.png"), pareto_scatter(summary, front, out / "pareto.png")]
    hist = out / "optuna_trials.csv"
    if hist.exists():
        p = optimisation_history(pd.read_csv(hist), out / "optimisation_history.png")
        if p:
            figs.append(p)
    return figs
