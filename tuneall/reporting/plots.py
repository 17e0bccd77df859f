"""Matplotlib figures of a results directory (Agg backend: no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from tuneall.reporting.frontier import FRONTIER_OBJECTIVES, resolve_metric  # noqa: E402
from tuneall.core.config import REDRAWN  # noqa: E402
from tuneall.core.progress import axes_text, varying_axes  # noqa: E402


# Axis words for the columns a figure plots: the split named, the unit given (no raw column names).
LABELS = {"val_ensemble_acc_mean": "validation ensemble accuracy\n(mean over seeds)",
          "ensemble_acc_mean": "test ensemble accuracy\n(mean over seeds)",
          "val_ensemble_nll_mean": "validation ensemble NLL, nats\n(mean over seeds)",
          "ensemble_nll_mean": "test ensemble NLL, nats\n(mean over seeds)",
          "inference_flops": "inference FLOPs per input (whole ensemble)",
          "total_params": "parameters (whole ensemble)", "train_time_s": "training time (s)"}
UNITS = {"param_steps": "param-steps", "param-steps": "param-steps", "flops": "FLOPs"}


def label(metric: str) -> str:
    """Words for a plotted column: its split (validation / test) and unit named."""
    if metric in LABELS:
        return LABELS[metric]
    split = "validation " if metric.startswith("val_") else "test " if "acc" in metric or "nll" in metric else ""
    return split + metric.removeprefix("val_").replace("_", " ")


def budget_text(summary: pd.DataFrame) -> str:
    """``C = 3e+07 param-steps`` from a summary's budget and unit columns ('' without a budget)."""
    b = summary["budget"].dropna() if "budget" in summary else pd.Series(dtype=float)
    if not len(b):
        return ""
    unit = summary["unit"].dropna().iloc[0] if "unit" in summary and summary["unit"].notna().any() else ""
    return f"C = {b.iloc[0]:.3g} {UNITS.get(str(unit), str(unit))}".rstrip()


def _chosen_label(best, axes=()) -> str:
    depth = "" if pd.isna(best.get("depth")) else f" d={int(best['depth'])}"
    return " ".join([f"chosen: {best['family']} w={float(best['width']):g}{depth} k={int(best['k'])}",
                     *axes_text(best, axes)])


def accuracy_vs_k(summary: pd.DataFrame, path: Path, best=None) -> Path:
    """Test accuracy against k, one series per architecture, each nudged sideways so none hides another; the
    chosen allocation (chosen on validation) starred."""
    ok = summary[summary["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    groups = list(ok.groupby(["family", "width"]))
    n, nudge = len(groups), {}
    for i, ((fam, width), g) in enumerate(groups):
        g = g.groupby("k", as_index=False)[["ensemble_acc_mean", "ensemble_acc_std"]].max().sort_values("k")
        dx = nudge[(fam, width)] = (i - (n - 1) / 2) * min(0.08, 0.4 / max(n, 1))  # equal values stay visible
        ax.errorbar(g["k"] + dx, g["ensemble_acc_mean"], yerr=g["ensemble_acc_std"], marker="os^Dv<>p"[i % 8],
                    ms=5, capsize=3, label=f"{fam} w={width:g}")
    if best is not None and pd.notna(best.get("ensemble_acc_mean")):
        at = best["k"] + nudge.get((best["family"], best["width"]), 0.0)  # on its series' nudged point
        ax.scatter([at], [best["ensemble_acc_mean"]], marker="*", s=260, facecolors="none", edgecolors="red",
                   linewidths=1.5, zorder=5, label=_chosen_label(best, varying_axes(ok)) + " (on validation)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # k is a count: no 1.5 ticks
    ax.set_xlabel("ensemble size k (members)")
    ax.set_ylabel("test ensemble accuracy\n(mean ± std over seeds)")
    ax.set_title(f"Test accuracy vs k at {budget_text(summary)}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _log_ticks(ax, values) -> None:
    """Log x axis whose labels stay readable on short spans (matplotlib labels only decades by default, so a span
    under one decade showed none): 1-2-5 or every integer multiple, engineering notation (167k, 1.2M)."""
    v = [float(x) for x in values if x and x > 0]
    ax.set_xscale("log")
    if v:
        decades = math.log10(max(v) / min(v)) if max(v) > min(v) else 0.0
        subs = (1.0, 2.0, 5.0) if decades >= 1 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0) if decades < 0.5 else \
            (1.0, 2.0, 3.0, 5.0)
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=subs))
        if decades < 0.3:  # a very short span: pad so that a tick falls inside
            ax.set_xlim(min(v) / 1.3, max(v) * 1.3)
    ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def pareto_scatter(summary: pd.DataFrame, front: pd.DataFrame, path: Path, objectives=None, best=None) -> Path:
    """The chosen objective (y) against the frontier's cost (x): trials coloured by k (one legend entry per k), the
    frontier's points, the best y reachable at or below each cost, and the chosen allocation starred."""
    # A validation objective on a table made before validation existed: its test twin (as the frontier does).
    objectives = tuple((resolve_metric(summary, m), d) for m, d in (objectives or FRONTIER_OBJECTIVES))
    (y, ymode), x = objectives[0], next((m for m, _ in objectives[1:]), "inference_flops")
    ok = summary[(summary["status"] == "ok") & summary[x].notna() & summary[y].notna()]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, k in enumerate(sorted(ok["k"].dropna().unique())):  # k is discrete: a colour and legend entry each
        g = ok[ok["k"] == k]
        ax.scatter(g[x], g[y], color=f"C{i % 10}", s=30, label=f"k={int(k)}")
    if not front.empty:
        f = front.sort_values(x)
        run = f[y].cummax() if ymode == "max" else f[y].cummin()
        # Drawn on to the costliest trial, so that a one-point frontier shows its line too.
        xs, ys = [*f[x], max(ok[x].max(), f[x].max())], [*run, run.iloc[-1]]
        ax.step(xs, ys, where="post", color="grey", lw=1, label="best at or below this cost")
        n = len(objectives)
        ax.scatter(f[x], f[y], facecolors="none", edgecolors="black", s=220, linewidths=1.2, zorder=6,
                   label=f"frontier ({n} objectives)" if n > 2 else "frontier point")
    if best is not None and pd.notna(best.get(y)) and pd.notna(best.get(x)):
        # smaller than the frontier's ring, which stays visible around it
        ax.scatter([best[x]], [best[y]], marker="*", s=120, color="red", zorder=5,
                   label=_chosen_label(best, varying_axes(ok)))
    _log_ticks(ax, ok[x])
    ax.set_xlabel(label(x) + ", lower is better")
    ax.set_ylabel(label(y) + (", higher is better" if ymode == "max" else ", lower is better"), fontsize=9)
    split = "validation" if y.startswith("val_") else "test"
    ax.set_title(f"Pareto frontier at {budget_text(summary)} ({split} split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def optimisation_history(optuna_trials: pd.DataFrame, path: Path, metric: str = "objective", mode: str = "max",
                         study=None) -> Path | None:
    """Each trial's objective and the best so far (a running max or min, as the objective's mode says): Optuna's
    own plot when the study can be read and every trial in it ran, else the same figure from ``optuna_trials.csv``
    over the trials that ran, in order (duplicates told without running, and drawn again, are hidden: their Optuna
    numbers would leave gaps and repeat points)."""
    redrawn = f"user_attrs_{REDRAWN}"
    if redrawn in optuna_trials and optuna_trials[redrawn].notna().any():
        study = None
    if study is not None:
        import warnings

        from optuna.visualization.matplotlib import plot_optimization_history

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna.visualization.matplotlib is marked experimental
            multi = len(study.directions) > 1
            ax = plot_optimization_history(study, target=(lambda t: t.values[0]) if multi else None,
                                           target_name=metric)
        fig = ax.figure
        handles, _ = ax.get_legend_handles_labels()
        ax.legend(handles, [label(metric).replace("\n", " "), "best so far"][:len(handles)], fontsize=8, loc="best")
    else:
        cols = [c for c in ("value", f"value_{metric}", "values_0") if c in optuna_trials]
        if not cols or optuna_trials[cols[0]].dropna().empty:
            return None
        col = cols[0]
        t = optuna_trials.sort_values("number")
        if redrawn in t:
            t = t[t[redrawn].isna()]
        t = t[t[col].notna()]
        x = range(len(t))  # trials in the order they were drawn
        fig, ax = plt.subplots()
        ax.scatter(x, t[col], s=20, label=label(metric).replace("\n", " "))
        best = t[col].cummax() if mode == "max" else t[col].cummin()
        ax.plot(x, best, color="red", label="best so far")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.set_size_inches(6.5, 4.2)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("Optuna trial number" if study is not None else "trial (in the order drawn)")
    ax.set_ylabel(f"{label(metric)}, {'higher' if mode == 'max' else 'lower'} is better", fontsize=9)
    split = "validation" if metric.startswith("val_") else "test"
    ax.set_title(f"Optimisation history ({split} split; best so far: {mode})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _load_study(out: Path):
    """The search's Optuna study (its journal file or ``study_storage``), or None if it cannot be read."""
    import json

    try:
        import optuna

        conf = json.loads((out / "tuneall.json").read_text()).get("config", {})
        if conf.get("study_storage"):
            storage = optuna.storages.RDBStorage(conf["study_storage"])
        elif (out / "optuna.journal").exists():
            from optuna.storages.journal import JournalFileBackend

            storage = optuna.storages.JournalStorage(JournalFileBackend(str(out / "optuna.journal")))
        else:
            return None
        return optuna.load_study(study_name=out.name, storage=storage)
    except Exception:  # noqa: BLE001  a figure is never worth failing a report over
        return None


def write_figures(out: Path, summary: pd.DataFrame, front: pd.DataFrame, objectives=None, best=None) -> list[Path]:
    """The search's figures; ``best``: the answer's row (:func:`tuneall.reporting.frontier.best_allocation`),
    marked in each."""
    if (summary["status"] == "ok").sum() == 0:
        return []
    objectives = tuple(objectives or FRONTIER_OBJECTIVES)
    figs = [accuracy_vs_k(summary, out / "accuracy_vs_k.png", best),
            pareto_scatter(summary, front, out / "pareto.png", objectives, best)]
    hist = out / "optuna_trials.csv"
    if hist.exists():
        metric, mode = objectives[0]
        p = optimisation_history(pd.read_csv(hist), out / "optimisation_history.png", metric, mode, _load_study(out))
        if p:
            figs.append(p)
    return figs
