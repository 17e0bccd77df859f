"""A sweep's results directory -> per-budget reports (the same files as ``search``) and the cross-budget report:
crossover (seed 000), switchover map and EST (seed 001), accuracy vs FLOPs per k (seed 002), data fraction vs
budget (seed 003), compute-optimal frontier with power-law extrapolation, and ``summary.md``."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from tuneall.reporting import analysis as A
from tuneall.rundir.fsio import atomic_write_frame, atomic_write_text
from tuneall.rundir import results as R
from tuneall.core.config import ALLOCATION_COLUMNS
from tuneall.core.errors import ConfigError
from tuneall.reporting.powerlaw import choice_statement, frontier_study, holdout_statement


def budget_dirname(c: float) -> str:
    return f"budget_{c:.4g}"


def write_budget_reports(out: Path, cells: pd.DataFrame, planned: pd.DataFrame, meta: dict) -> None:
    """One directory per budget with trials.csv, tuneall.json and :func:`tuneall.reporting.search_report.build_report`'s outputs."""
    from tuneall.reporting.search_report import TRIAL_COLUMNS, build_report

    conf = meta["config"]
    primary = conf["rules"][0]
    for c in meta["sweep"]["budgets"]:
        d = out / budget_dirname(c)
        d.mkdir(exist_ok=True)
        rule = cells["rule"] if "rule" in cells else pd.Series(None, index=cells.index, dtype=object)
        sel = cells[(cells["budget"] == c) & ((rule == primary) | rule.isna())]  # failed jobs have no rule
        rows = sel.rename(columns={"job": "trial_id"}).to_dict("records")
        bad = planned[(planned["budget"] == c) & ~planned["feasible"].astype(bool)]
        rows += [{**r, "trial_id": f"infeasible-{i}", "status": "infeasible"} for i, r in
                 enumerate(bad.to_dict("records"))]
        df = pd.DataFrame(rows, columns=TRIAL_COLUMNS)
        atomic_write_frame(df, d / R.TRIALS)
        atomic_write_frame(df, d / R.TRIALS_PARQUET)
        budget = {"value": c, "unit": conf["unit"], "min_steps": conf["min_steps"]}
        one = {**meta, "kind": "search", "config": {**conf, "budget": budget, "searcher": "grid (sweep)",
                                                    "rule": primary}}
        R.write_meta(d, one, "complete")
        build_report(d)


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.4g}"
    return str(v)


def md_table(df: pd.DataFrame, cols: list[str] | None = None) -> str:
    if df is None or df.empty:
        return "(none)"
    cols = [c for c in (cols or list(df)) if c in df]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df[cols].itertuples(index=False)]
    return "\n".join(lines)


def analyse(cells: pd.DataFrame, rules: list[str], n_boot: int = 300) -> dict[str, pd.DataFrame]:
    """Every cross-budget table of a cells table (also usable on a hand-made table)."""
    primary = rules[0]
    summary = A.summarize_cells(cells)
    t = {"cells_summary": summary, "crossover_curves": A.crossover_curves(summary, primary),
         "crossover_budgets": A.crossover_table(cells, primary, n_boot=n_boot)}
    ks = sorted(k for k in summary["k"].unique() if k > 1)
    maps = [A.switchover_map(summary, int(k), primary) for k in ks]
    t["switchover_map"] = pd.concat(maps, ignore_index=True) if maps else pd.DataFrame()
    t["est"] = A.ensemble_switchover_threshold(t["switchover_map"]) if not t["switchover_map"].empty \
        else pd.DataFrame()
    t["flops_curves"], t["optimal_k"] = A.flops_curves(summary), A.optimal_k(summary)
    if "data_fraction" in summary and summary["data_fraction"].nunique() > 1:
        t["data_fraction"] = A.data_fraction_table(summary, primary)
    study = frontier_study(cells, primary, n_boot=n_boot)
    t.update({"compute_frontier": study["frontier"], "powerlaw_fits": study["fits"],
              "extrapolation": study["extrapolation"], "holdout": study["holdout"],
              "predicted_switchover": study["switchover"], "predicted_best_allocation": study["best_allocation"],
              "allocation_holdout": study["allocation_holdout"]})
    return t


def build_sweep_report(out: str | Path, n_boot: int = 300) -> dict[str, pd.DataFrame]:
    """Write the cross-budget tables (CSV), figures and summary.md of a sweep directory; returns the tables."""
    from tuneall.sweeping import plots as P

    out = Path(out)
    meta = R.read_json(out / R.SWEEP_META, required=("config", "sweep"))
    try:
        cells = pd.read_csv(out / R.CELLS)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{out / R.CELLS} cannot be read ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    rules = meta["config"].get("rules") or ["mean"]
    if not (cells.get("status") == "ok").any():
        atomic_write_text(out / R.SUMMARY, f"# tuneall sweep: {out.name}\n\nNo cell trained successfully; see "
                                           "`cells.csv` and `jobs.csv` for the errors.\n")
        return {}
    t = analyse(cells, rules, n_boot=n_boot)
    for name, df in t.items():
        atomic_write_frame(df, out / f"{name}.csv")
    unit = meta["config"].get("unit")
    figs = [P.crossover_figure(t["crossover_curves"], t["crossover_budgets"], out / "crossover.png", unit),
            P.switchover_figure(t["switchover_map"], t["est"], out / "switchover_map.png"),
            P.flops_figure(t["flops_curves"], out / "accuracy_vs_flops.png"),
            P.frontier_figure(t["compute_frontier"], t["extrapolation"], t["holdout"], out / "frontier_fit.png", unit)]
    if "data_fraction" in t:
        figs.append(P.data_fraction_figure(t["data_fraction"], out / "data_fraction.png", unit))
    atomic_write_text(out / R.SUMMARY, _summary(out, meta, t, [f for f in figs if f]))
    return t


def _summary(out: Path, meta: dict, t: dict, figs: list[Path]) -> str:
    conf, sw = meta["config"], meta["sweep"]
    budgets = ", ".join(f"{c:.3g}" for c in sw["budgets"])
    trained, largest, fresh = sw["member_steps_trained"], sw["member_steps_largest_budget"], \
        sw["member_steps_without_reuse"]
    lines = [f"# tuneall sweep: {out.name}", "",
             f"Budgets C = {budgets} {conf['unit']} (at least {conf['min_steps']} steps per member) on "
             f"`{conf['dataset']}`, {conf['seeds']} seed(s) per allocation, combination rule(s) "
             f"{', '.join(conf['rules'])}; {sw['jobs']} Ray Tune trials.", "",
             f"Training: {sw['reuse_note']}. Member-steps trained {trained:,}"
             + (f" ({sw['member_steps_reused']:,} answered from the member store)" if sw.get("member_store") else "")
             + f"; the largest budget alone needs "
             f"{largest:,}; fresh runs at every budget would need {fresh:,} ({fresh / max(trained, 1):.2f}x). "
             f"Wall time {sw['wall_time_s']:.0f} s." + (f" {sw['failed_jobs']} trial(s) failed." if sw.get(
                 "failed_jobs") else ""), "",
             "Accuracies in this report are on the **test** split, per configuration, as the papers report them. "
             "Every cell also carries the same metrics on the validation split carved from the training data "
             "(`val_*` columns of `cells.csv`), the split that a search chooses on.", ""]
    if meta.get("command"):
        lines += ["Command: `" + " ".join(map(str, meta["command"])) + "`", ""]
    lines += ["Q0-Q3 name the research questions this sweep answers (the brief's seed studies 000-003), not random "
              "seeds; the random seeds are the repeats above.", ""]
    lines += ["Intervals are 16-84% percentiles of a paired bootstrap over seeds. Per-budget reports (the same files "
              "as `tuneall search`): " + ", ".join(f"[{budget_dirname(c)}]({budget_dirname(c)}/summary.md)"
                                                   for c in sw["budgets"]), ""]
    lines += ["## Size-compute crossover (question Q0)", "",
              "Budget from which the larger design is more accurate at every larger budget run (`above range`: "
              "not by the largest budget; `below range`: already at the smallest).", "",
              md_table(t["crossover_budgets"], ["comparison", "crossover", "lo", "hi", "p_cross", "status"]), "",
              md_table(t["crossover_curves"], ["line", "budget", "width", "steps", "mean", "std", "worst"]), ""]
    est = t["est"]
    lines += ["## Switchover map and EST (question Q1)", "",
              "Ensemble of k members with at most the single network's parameters against that single network, "
              "under the same budget; the EST in steps is the fewest steps from which the ensemble wins at every "
              "larger step count, per parameter count (blank: not reached).", ""]
    if not t["switchover_map"].empty:
        g = t["switchover_map"].assign(clear=lambda m: m["margin"].abs() > 2 * m["margin_se"]).groupby(["k", "design"])
        wins = pd.DataFrame({"tiles": g.size(), "ensemble_win_fraction": g["winner"].apply(
            lambda w: (w == "ensemble").mean()), "mean_margin": g["margin"].mean(),
            "tiles_beyond_2se": g["clear"].sum()}).reset_index()
        lines += [md_table(wins), "",
                  md_table(est[est["axis"] == "params at budget"], ["k", "design", "budget", "est_params"]), "",
                  md_table(est[est["axis"] == "steps at params"], ["k", "design", "params", "est_steps",
                                                                   "est_epochs"]), ""]
    else:
        lines += ["(no single/ensemble pairs of comparable parameters in this sweep)", ""]
    lines += ["## Accuracy vs FLOPs per ensemble size (question Q2)", "",
              md_table(t["optimal_k"], ["rule", "budget", "best_k", "best_width",
                                        *[c for c in ALLOCATION_COLUMNS if c in t["optimal_k"]], "mean",
                                        "best_single"]), ""]
    if "data_fraction" in t:
        lines += ["## Data fraction vs budget (question Q3)", "",
                  md_table(t["data_fraction"], ["budget", "data_fraction", "width", "k", "epochs", "mean", "std",
                                                "gap_to_best", "best_fraction"]), ""]
    # The hold-out verdict comes first: whether the fit beat "no further gain" decides how to read what follows.
    lines += ["## Compute-optimal frontier and extrapolation", "",
              holdout_statement(t["holdout"], choice=t.get("allocation_holdout")), "",
              "Hold-out per design class: fitted without the largest budget, predicting it (persistence = the "
              "accuracy at the second-largest budget, the no-gain baseline; fit_beats_persistence = abs_error < "
              "persistence_abs_error; p_fit_beats_persistence = the share of seed resamples where it does):", "",
              md_table(t["holdout"].assign(fit_beats_persistence=lambda h: h["abs_error"] < h[
                  "persistence_abs_error"]) if not t["holdout"].empty else t["holdout"],
                       ["class", "held_out_budget", "predicted_acc", "acc_lo", "acc_hi", "observed_acc", "abs_error",
                        "inside_band", "persistence_abs_error", "fit_beats_persistence",
                        "p_fit_beats_persistence", "band_scale"]), "",
              "err(C) = E + A C^-alpha fitted per design class to the best accuracy at each budget.", "",
              md_table(t["powerlaw_fits"], ["class", "E", "A", "alpha", "alpha_lo", "alpha_hi", "budgets_fitted"]),
              "", "Predicted switchover (fitted ensemble error below the single model's):", "",
              md_table(t["predicted_switchover"], ["ensemble", "predicted_switchover", "lo", "hi", "p_cross",
                                                   "status", "beyond_largest"]), "",
              "Predicted best allocation at 10x the largest budget (top 5; p_best = bootstrap share), shown only when "
              "the allocation choice passed its out-of-sample check:", "",
              md_table(t["predicted_best_allocation"].head(5)) if not t["predicted_best_allocation"].empty
              else "(not shown: " + choice_statement(t.get("allocation_holdout")) + ")", ""]
    if figs:
        lines += ["## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figs] + [""]
    lines += ["Files: `cells.csv` (one row per allocation, budget, rule, seed), `jobs.csv`, `planned_cells.csv`, "
              "the tables above as CSV, `sweep.json` (config, command, versions, member-step counts).", ""]
    return "\n".join(lines)
