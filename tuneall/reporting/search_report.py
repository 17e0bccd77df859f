"""Results directory -> trials table, frontier tables, figures and ``summary.md``. ``tuneall report DIR`` reruns
:func:`build_report` from what is on disk, training nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tuneall.rundir import results as R
from tuneall.core.errors import ConfigError
from tuneall.rundir.fsio import atomic_write_frame, atomic_write_text
from tuneall.reporting.frontier import (
    ALLOCATION_COLUMNS,
    COST_COLUMNS,
    PLAN_COLUMNS,
    best_allocation,
    best_per,
    choice_metric,
    choice_split,
    frontier,
    frontier_objectives,
    resolve_metric,
    summarize_trials,
)
from tuneall.core.bitvec import CORRECT_COLUMN
from tuneall.reporting.tie_lines import tie_lines
from tuneall.core.config import SPLIT_METRICS
from tuneall.core.progress import axes_text, varying_axes
from tuneall.reporting.markdown import COSTS, SHOW, alloc_name, md_table, with_axes

# Per trial: member-steps it trained, and member-steps answered from the member store instead (search cost).
MEMBER_STEPS = ["member_steps_trained", "member_steps_reused"]
TRIAL_COLUMNS = ["trial_id", "repeat", "status", *ALLOCATION_COLUMNS, *PLAN_COLUMNS, *SPLIT_METRICS,
                 *COST_COLUMNS, "n_diverged", "train_time_s", "wall_time_s", *MEMBER_STEPS, "curve_json", "node_id",
                 "repeat_of", "reason", "error", CORRECT_COLUMN, "trial_order"]


def trial_rows(trial_id: str, config: dict, metrics: dict, error: str | None, order: int | None = None) -> list[dict]:
    """Rows of the trials table for one trial: one per repeat (one row with no repeat if it never trained).
    ``order``: its suggestion order (the journal's, :func:`tuneall.tuning._callbacks.trial_order`)."""
    point = config.get("point", config)
    base = {"trial_id": trial_id, "trial_order": order if isinstance(order, int) and not isinstance(order, bool)
            else None, **{c: point.get(c) for c in ALLOCATION_COLUMNS}}
    base.update({c: metrics[c] for c in (*ALLOCATION_COLUMNS, *PLAN_COLUMNS) if c in metrics})
    if error is not None or not metrics:
        return [{**base, "status": "failed", "error": (error or "no result reported").splitlines()[0]}]
    base.update({c: metrics.get(c) for c in ("status", *COST_COLUMNS, "n_diverged", "train_time_s", "wall_time_s",
                                             *MEMBER_STEPS, "curve_json", "node_id", "repeat_of", "reason")})
    repeats = json.loads(metrics.get("repeats_json") or "[]")
    if not repeats:
        return [base]
    return [{**base, "repeat": r, **rep} for r, rep in enumerate(repeats)]


def write_trials_table(records: list[dict], out: Path) -> pd.DataFrame:
    """The trials table from the journal's records, as CSV and Parquet (each written atomically): one row per trial
    and repeat."""
    df, _ = _table(records)
    _write_table(df, Path(out))
    return df


def _table(records: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """(trials table, problems): a record whose contents cannot be turned into rows is left out and named."""
    rows, problems = [], []
    for rec in records:
        try:
            rows += trial_rows(rec["trial_id"], rec.get("config") or {}, rec.get("metrics") or {}, rec.get("error"),
                               rec.get("order"))
        except (TypeError, ValueError, AttributeError, KeyError) as e:
            problems.append(f"trial {str(rec.get('trial_id'))[:40]!r}: {type(e).__name__}")
    return _numeric(pd.DataFrame(rows, columns=TRIAL_COLUMNS)), problems


def _write_table(df: pd.DataFrame, out: Path) -> None:
    from tuneall.rundir.fsio import atomic_write_frame

    atomic_write_frame(df, out / R.TRIALS)
    atomic_write_frame(df, out / R.TRIALS_PARQUET)


# Columns that must hold numbers: a damaged value becomes NaN (blank), never a crash of the report.
_NUMERIC = ["repeat", "width", "depth", "k", "data_fraction", "lr", "momentum", "weight_decay", "batch_size",
            "label_smoothing", *PLAN_COLUMNS[:5], "spent", *SPLIT_METRICS, "time_per_step_s", "time_per_epoch_s", "epochs", "latency_ms_per_image",
            "peak_mem_mb", "n_diverged", "train_time_s", "wall_time_s", *MEMBER_STEPS]
_TEXT = ["trial_id", "status", "family", "repeat_of", "design", "unit", "optimizer"]


def _numeric(df: pd.DataFrame) -> pd.DataFrame:
    for c in _NUMERIC:
        if c in df and df[c].dtype == object:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    for c in _TEXT:
        if c in df and df[c].notna().any():
            df[c] = df[c].map(lambda v: v if v is None or (isinstance(v, float) and v != v) else str(v))
    return df


# Ray's trial ids are 8 hex digits: read them as text, or one that happens to be all digits becomes a number.
ID_DTYPES = {"trial_id": str, "repeat_of": str}
REQUIRED_COLUMNS = ("trial_id", "status", "family", "width", "k")


def load_trials(results_dir: str | Path) -> pd.DataFrame:
    """``trials.csv`` as a table, or ConfigError with one line if it is missing or damaged."""
    path = Path(results_dir) / R.TRIALS
    if not path.exists():
        if (Path(results_dir) / R.META).exists():  # a search stopped before its first trial finished
            raise ConfigError(f"{results_dir} has no finished trial to report yet (stopped before the first one "
                              f"finished); continue it with: tuneall resume {results_dir}")
        raise ConfigError(f"{results_dir} is not a tuneall results directory (no trials.csv)")
    try:
        raw = path.read_bytes()
        if b"\x00" in raw:
            raise ValueError("binary data (NUL bytes)")
        raw.decode("utf-8")
        df = pd.read_csv(path, dtype=ID_DTYPES)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        msg = " ".join(str(e).split())[:120] or type(e).__name__
        raise ConfigError(f"{path} is damaged ({msg}) and there is no journal to rebuild it from") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df]
    if missing:
        raise ConfigError(f"{path} is damaged (no {missing[0]!r} column) and there is no journal to rebuild it from")
    return _numeric(df)


def read_trials(out: Path, meta: dict) -> tuple[pd.DataFrame, list[str], str | None]:
    """The trials table a report is built from, with what could not be read: ``(trials, notes, incomplete)``.

    The journal is the durable record: where it exists the table is rebuilt from it (and ``trials.csv`` rewritten),
    whatever ``trials.csv`` holds; ``notes`` names damaged journal lines and a ``trials.csv`` that disagreed.
    ``incomplete`` says why the table holds fewer trials than the run recorded as finished (None when it does not).
    Without a journal (a sweep's per-budget directory) ``trials.csv`` is read, refusing a damaged one.
    """
    from tuneall.rundir import journal

    if not (out / R.JOURNAL).exists():
        return load_trials(out), [], None
    read = journal.read_checked(out)
    df, problems = _table(read.records)
    notes = [read.describe(out / R.JOURNAL)] if read.skipped else []
    if problems:
        notes.append(f"{out / R.JOURNAL}: left out {len(problems)} record(s) with unusable contents "
                     f"({'; '.join(problems[:3])}{'; ...' if len(problems) > 3 else ''})")
    ids = set(df["trial_id"].dropna())
    if not ids:
        raise ConfigError(f"no trial could be read from {out / R.JOURNAL}"
                          + (f" ({'; '.join(notes)})" if notes else " (it is empty)")
                          + "; nothing to report")
    before = _previous_ids(out)
    # A search's first report has no trials.csv yet (nothing disagreed); after it, tuneall.json counts the trials.
    first = before is None and not (out / R.TRIALS).exists() and "trials_finished" not in meta
    # A table that lacks trials the journal gained since (every resume) is ordinary, not a disagreement.
    stale_only = before is not None and before <= ids and len(before) == meta.get("trials_finished")
    if before != ids and not first and not stale_only:
        held = "unreadable" if before is None else (f"held {len(before & ids)} of the journal's {len(ids)} trials"
                                                     + (f" and {len(before - ids)} it does not" if before - ids else ""))
        notes.append(f"{out / R.TRIALS} disagreed with the journal ({held}); rebuilt from the journal")
    _write_table(df, out)
    df = load_trials(out)  # the table as any later report reads it: a rebuilt report is identical to this one
    expected = meta.get("trials_finished")
    incomplete = None
    if isinstance(expected, int) and len(ids) < expected:
        incomplete = (f"the journal holds {len(ids)} of the {expected} trials this search recorded as finished"
                      + (f" ({len(read.skipped)} damaged line(s) skipped)" if read.skipped else ""))
    elif isinstance(expected, int) and (read.skipped or problems):  # every finished trial was recovered
        notes.append(f"recovered: all {expected} trial(s) this search recorded as finished were read from the "
                     f"journal; its {len(read.skipped) + len(problems)} damaged record(s) were skipped and no "
                     "finished trial is missing")
    elif read.skipped or problems:
        incomplete = f"{len(read.skipped) + len(problems)} journal record(s) could not be read"
    return df, notes, incomplete


def _previous_ids(out: Path) -> set | None:
    try:
        return set(load_trials(out)["trial_id"].dropna())
    except ConfigError:
        return None


def add_trust_columns(summary: pd.DataFrame, trials: pd.DataFrame, meta: dict,
                      objectives=None, axes=()) -> tuple[pd.DataFrame, list[str]]:
    """Add ``degenerate`` (ensemble accuracy at or below chance, :func:`tuneall.reporting.ties.degenerate_mask`) and
    ``tied_with_best`` (:func:`tuneall.reporting.ties.tie_set`) to the per-trial summary; return it with the summary.md lines
    that name the tied and the degenerate allocations. Both read the metric that chooses: validation accuracy
    (:func:`tuneall.reporting.frontier.choice_metric`; test for tables made before validation existed)."""
    from tuneall.data import dataset_info
    from tuneall.core.errors import DataError
    from tuneall.reporting.ties import chance_threshold, degenerate_mask, tie_set

    out, lines = summary.copy(), []

    def alloc(row) -> str:  # named by the recipe fields the search varied (``axes``) too
        return alloc_name(row, axes)

    metric = choice_metric(out) if "ensemble_acc_mean" in out else "ensemble_acc_mean"
    try:
        facts = meta.get("data") or {}  # the data's sizes as the run recorded them (user data too)
        if not facts:
            info = dataset_info(meta.get("config", {}).get("dataset"))
            facts = {"num_classes": info.num_classes, "n_test": info.n_test, "n_val": info.n_val}
        n = facts.get("n_val") if metric.startswith("val_") else facts.get("n_test")
        out["degenerate"] = degenerate_mask(out[metric], facts["num_classes"], n or None) if metric in out else False
        line = chance_threshold(facts["num_classes"], n or None)
    except DataError:  # no tuneall.json or an unknown dataset: the chance line is unknown, nothing is flagged
        out["degenerate"], line = False, None
    ties, test = tie_set(trials, metric[:-len("_mean")], "max", exclude=out.loc[out["degenerate"], "trial_id"])
    tied_ids = set(ties.loc[ties["tied"], "trial_id"]) if len(ties) else set()
    out["tied_with_best"] = out["trial_id"].astype(str).isin(tied_ids)
    out["p_best"] = out["trial_id"].astype(str).map(dict(zip(ties["trial_id"], ties["p_best"]))).astype(float)
    out.attrs["tie_test"] = test
    out.attrs["determined"] = bool(ties.attrs.get("determined", False))
    if len(ties):
        chosen = best_allocation(out, objectives=objectives)  # the answer (reporting/choice.py), not the top mean
        lines += tie_lines(out, ties, test, None if chosen is None else str(chosen["trial_id"]), alloc)
    bad = out[out["degenerate"]]
    if len(bad):
        lines += [f"Degenerate (ensemble accuracy at or below chance plus noise, {line:.4f}; never presented as best): "
                  + "; ".join(f"{alloc(r)} ({r[metric]:.4f})" for _, r in bad.iterrows()) + ".", ""]
    return out, lines


def _first_error(trials: pd.DataFrame) -> str:
    """The first failed trial's error (or infeasible trial's reason), on one line, for a report with no answer."""
    for col in ("error", "reason"):
        if col in trials:
            errs = trials[col].dropna().astype(str)
            errs = errs[errs.str.strip() != ""]
            if len(errs):
                line = errs.iloc[0].strip().splitlines()[-1]
                return line if len(line) <= 300 else line[:297] + "..."
    return ""


def build_report(results_dir: str | Path, state: str | None = None) -> pd.DataFrame:
    """Write trials_summary.csv, frontier.csv, best_per_k.csv, best_per_width.csv, figures and summary.md.

    ``state``: the run's state as the summary should state it (default: as ``tuneall.json`` records it).
    """
    from tuneall.reporting import plots

    import sys

    out = Path(results_dir)
    meta = R.read_meta(out)
    trials, notes, incomplete = read_trials(out, meta)
    for note in notes:
        print(f"tuneall: warning: {note}", file=sys.stderr, flush=True)
    state = state or meta.get("state")
    objectives = frontier_objectives(meta.get("config", {}).get("objectives"))
    table = summarize_trials(trials)
    axes = varying_axes(table)  # the recipe fields the search varied: every label and table names them
    summary, trust_lines = add_trust_columns(table, trials, meta, objectives, axes)
    tie_test = summary.attrs.get("tie_test", "")
    # A point the sampler proposed again is the same allocation: listed in the trials tables, counted once here.
    distinct = summary[summary["repeat_of"].isna()] if "repeat_of" in summary else summary
    show, costs = with_axes(SHOW, axes), with_axes(COSTS, axes)
    front = frontier(distinct, objectives)
    per_k = best_per(distinct, "k", objectives=objectives)
    per_width = best_per(distinct, "width", objectives=objectives)
    for df, name in ((summary, R.TRIALS_SUMMARY), (front, R.FRONTIER), (per_k, "best_per_k.csv"),
                     (per_width, "best_per_width.csv")):
        atomic_write_frame(df, out / name)
    best = best_allocation(distinct, objectives=objectives)  # the one answer: frontier row 0 (reporting/choice.py)
    figures = plots.write_figures(out, summary, front, objectives, best)

    conf = meta.get("config", {})
    counts = summary["status"].value_counts().to_dict()
    lines = [f"# tuneall search: {out.name}", ""]
    if incomplete:
        lines += [f"**INCOMPLETE: {incomplete}; the tables below hold only the {summary['trial_id'].nunique()} "
                  "trial(s) that could be read.**", ""]
        lines += [f"- {n}" for n in notes] + [""]
    elif notes:
        lines += [f"Note: {n}" for n in notes] + [""]
    if state in ("running", "interrupted"):
        lines += [f"**INCOMPLETE: this search was interrupted ({state}); the tables below hold only the "
                  f"{summary['trial_id'].nunique()} trial(s) that finished. Continue it with `tuneall resume "
                  f"{out}`.**", ""]
    if best is None:  # said first: the tables below are a record of what went wrong, not an answer
        first = _first_error(trials)
        lines += ["**NO ANSWER: no trial trained successfully" + (" above chance" if summary["degenerate"].any()
                                                                  else "")
                  + " (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"
                  + (f"; first error: {first}" if first else "") + ".**", ""]
    stop = meta.get("time_budget") or {}
    if stop.get("stopped"):
        lines += [f"**Stopped by the time budget** ({stop['seconds']:g} s of wall clock): {stop['trials_run']} of "
                  f"{stop['trials_planned']} planned trials ran, each to the end; every table below covers exactly "
                  f"those. `tuneall resume {out}` runs the rest.", ""]
    if conf:
        b = conf.get("budget", {})
        lines += [f"Budget C = {b.get('value', float('nan')):.4g} {b.get('unit', '')} (at least {b.get('min_steps')} "
                  f"steps per member) on `{conf.get('dataset')}`, space `{conf.get('space', {}).get('name')}`, "
                  f"searcher `{conf.get('searcher')}`, {conf.get('seeds')} seed(s) per allocation.", ""]
    if meta.get("command"):
        lines += ["Command: `" + " ".join(meta["command"]) + "`", ""]
    repeats = len(summary) - len(distinct)
    lines += ["Trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
              + (f" ({repeats} repeated point(s) answered from the first trial, not trained again)" if repeats else ""),
              ""]
    if "member_steps_trained" in summary and summary["member_steps_trained"].notna().any():
        trained, reused = (int(summary[c].fillna(0).sum()) for c in MEMBER_STEPS)
        lines += [f"Member-steps: {trained:,} trained, {reused:,} answered from the member store (members are "
                  "trained once and reused exactly where a trial's members are prefixes of stored ones).", ""]
    split = choice_split(distinct)
    if split == "validation":
        n_val = (meta.get("data") or {}).get("n_val")
        lines += ["Chosen on **validation**: the best allocation, the frontier, the best per k / width and the ties "
                  "use validation accuracy (`val_ensemble_acc_mean`"
                  + (f", {n_val} inputs carved from the training data" if n_val else "") + "). Test accuracy "
                  "(`ensemble_acc_*`) is reported beside it and never used to choose.", ""]
        from tuneall.reporting.frontier import _eligible
        from tuneall.reporting.saturation import validation_warning

        warn = validation_warning(_eligible(distinct), objectives[0][0], n_val, objectives[0][1])
        if warn:  # the answer cannot be trusted to be more than the cheapest of many: say so, first
            print(f"tuneall: warning: {warn}", file=sys.stderr, flush=True)
            lines += [f"**Warning: {warn}.**", ""]
        front.attrs["warning"] = warn
    else:
        lines += ["Chosen on **test** accuracy: this table was made before tuneall held out a validation split.", ""]
    if best is not None:
        val = (f"validation accuracy {best['val_ensemble_acc_mean']:.4f} ± {best['val_ensemble_acc_std']:.4f}; "
               if split == "validation" else "")
        opt = f", {best['optimizer']}" if isinstance(best.get("optimizer"), str) else ""
        opt += "".join(f", {a}" for a in axes_text(best, [a for a in axes if a != "optimizer"]))
        lines += ["## Best allocation", "",
                  f"**{best['family']} width {best['width']:g}, depth {int(best['depth'])}, k = {int(best['k'])}** "
                  f"(data fraction {best['data_fraction']:g}{opt}): {int(best['steps'])} steps per member, "
                  f"{int(best['params_per_member']):,} parameters per member; {val}test ensemble accuracy "
                  f"{best['ensemble_acc_mean']:.4f} ± {best['ensemble_acc_std']:.4f} (worst seed "
                  f"{best['ensemble_acc_worst']:.4f}); mean member test accuracy {best['member_acc_mean_mean']:.4f}.",
                  "", *trust_lines]
    else:
        lines += ["No trial trained successfully" + (" above chance." if summary["degenerate"].any() else "."), "",
                  *trust_lines]
    shown = [(resolve_metric(distinct, m), d) for m, d in objectives]  # tables made before validation: test twins
    lines += ["## Pareto frontier", "", "Not beaten at once on " + ", ".join(
              f"{m} ({'up' if d == 'max' else 'down'})" for m, d in shown) + "; training time is reported, not an "
              "objective unless the search names it.", "", md_table(front, show), "",
              "## Best allocation per ensemble size k", "", md_table(per_k, show), "",
              "## Best allocation per width", "", md_table(per_width, show), ""]
    ok = distinct[distinct["status"] == "ok"]
    if "design" in ok and ok["design"].notna().any():
        per_design = best_per(distinct, "design", objectives=objectives)
        atomic_write_frame(per_design, out / "best_per_design.csv")
        lines += ["## Best allocation per design class (question Q1)", "",
                  md_table(per_design, ["design", *costs[:5 + len(axes)], "ensemble_acc_std",
                                         *costs[5 + len(axes):]]), ""]
    if "time_per_step_s" in ok and len(ok):
        kind = ok["mem_kind"].dropna().iloc[0] if "mem_kind" in ok and ok["mem_kind"].notna().any() else "?"
        lines += ["## Costs (question Q1)", "",
                  "Training time per step and per epoch (all members, one after another); time to reach the best "
                  "single model's accuracy at this budget (from the anytime curve; blank if never reached); inference "
                  f"latency per image at batch 256 (members one after another); peak training memory ({kind}).", "",
                  md_table(ok.sort_values(choice_metric(ok), ascending=False), costs), ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figures] + [""]
    lines += ["Files: `trials.csv` / `trials.parquet` (one row per trial and repeat), `trials_summary.csv`, "
              "`frontier.csv`, `best_per_k.csv`, `best_per_width.csv`, `tuneall.json` (config, command, versions).", ""]
    atomic_write_text(out / R.SUMMARY, "\n".join(lines))
    # The one answer (what the summary names): its row, and the allocations tied with it under the test used.
    front.attrs["best"] = None if best is None else best.to_dict()
    tied = distinct.iloc[:0]
    if best is not None and "tied_with_best" in distinct:
        tied = distinct[distinct["tied_with_best"].astype(bool) & (distinct["trial_id"] != best["trial_id"])]
    best_alloc = None if best is None else alloc_name(best, axes)
    front.attrs["tied"] = list(dict.fromkeys(a for a in (alloc_name(r, axes) for _, r in tied.iterrows())
                                             if a != best_alloc))
    front.attrs["axes"] = list(axes)
    front.attrs["tie_test"] = tie_test
    front.attrs["determined"] = bool(summary.attrs.get("determined", False))
    front.attrs["p_best"] = None if best is None else best.get("p_best")
    return front
