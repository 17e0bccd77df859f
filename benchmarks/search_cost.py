"""Search cost (issue 13): what each searcher spends and whether it finds the grid's plateau.

Per case (dataset, budget C; the packaged ``paper`` space, 3 seeds per allocation) the exhaustive grid without the
member store is the reference (today's cost; its tie set, :mod:`tuneall.reporting.ties`, is the plateau). Then the grid with
member reuse (deterministic: one run, its cells compared bit for bit with the reference's), and over several search
seeds ``--searcher halving``, then TPE and random with as many trials as halving spent budgets (the same compute).
Per method: training compute (member-steps x each member's step cost, rungs included) as a multiple of C x seeds, member-steps against the reference grid's, wall
time as a multiple of the reference grid's and of its wall time per C x seeds trained (Ray and report overheads in),
and whether the chosen allocation lies in the grid's tie set at the same search seed (the seed also sets the member
seeds; the grid with member reuse gives the grid's cells at every seed). One local Ray serves every search.

    python benchmarks/search_cost.py --quick     # mnist1d at 3e6, digits at 1e7, 3 search seeds
    python benchmarks/search_cost.py             # two budgets each
    python benchmarks/search_cost.py --held-out  # the held-out cases (issue 25): no constant was tuned on them

The held-out cases are narrow where ``paper`` is a plateau: the learning rate, the depth or the data fraction
matters. Per case the exhaustive grid runs once (its wall per C x seeds is the unit of wall time); the
grid with member reuse runs at every search seed (its tie set is the plateau), and each run's chosen allocation is
reported with its P(best) in its own search and whether it lies in that tie set.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _common as C

SPACE = "paper"  # the packaged space (tuneall/search_spaces/paper.yaml): the case
CASES = {True: [("mnist1d", 3e6), ("digits", 1e7)],
         False: [("mnist1d", 3e6), ("mnist1d", 1e7), ("digits", 3e6), ("digits", 1e7)]}
KEY = ["width", "depth", "k", "data_fraction", "lr", "optimizer", "weight_decay", "label_smoothing"]
CELLS = ["val_ensemble_acc", "ensemble_acc", "val_ensemble_nll", "ensemble_nll"]  # compared bit for bit
REUSE_GOAL, HALVING_COST_GOAL, HALVING_HIT_GOAL = 0.45, 3.0, 0.9
_CNN = {"families": ["cnn3"], "momentum": 0.9, "batch_size": 128}
# Held out (issue 25): chosen before any run of them and never used to set a constant (RUNGS, ETA, CAP, Z, ...).
HELD_OUT = [("mnist1d", 3e6, {**_CNN, "name": "held-lr", "width": [0.25, 0.5, 1.0], "k": [1, 2, 4],
                              "lr": [0.01, 0.05, 0.2]}),
            ("mnist1d", 1e7, {**_CNN, "name": "held-depth", "width": [0.25, 0.5], "depth": [2, 3, 4, 5],
                              "k": [1, 2, 4], "lr": 0.05}),
            ("mnist1d", 3e6, {**_CNN, "name": "held-data", "width": [0.25, 0.5], "k": [1, 2, 4],
                              "data_fraction": [0.25, 0.5, 1.0], "lr": 0.05}),
            # Added in the fifth sitting, before any run of them: the first three do not separate searchers (12-21
            # allocations tied with the best at mnist1d's default 400 validation inputs), so the same questions with
            # 1,200 (val_fraction 0.3: a narrower tie set, fewer training inputs).
            ("mnist1d", 3e6, {**_CNN, "name": "held-lr-val30", "width": [0.25, 0.5, 1.0], "k": [1, 2, 4],
                              "lr": [0.01, 0.05, 0.2], "val_fraction": 0.3}),
            ("mnist1d", 3e6, {**_CNN, "name": "held-data-val30", "width": [0.25, 0.5], "k": [1, 2, 4],
                              "data_fraction": [0.25, 0.5, 1.0], "lr": 0.05, "val_fraction": 0.3})]
HELD_OUT_GOAL = (2.0, 2.5, 0.9)  # compute <= 2 x C x seeds, wall <= 2.5 units, in the tie set >= 90 %


def _search(root: Path, name: str, dataset: str, budget: float, seeds: int, seed: int, space=SPACE, **kw):
    import tuneall
    from tuneall.planning.space import parse_space

    t = time.perf_counter()
    if isinstance(space, dict):  # a case's validation share rides with its space (not a space key)
        kw.setdefault("val_fraction", space.get("val_fraction"))
        space = parse_space({k: v for k, v in space.items() if k != "val_fraction"})
    tuneall.search(budget=budget, dataset=dataset, space=space, seeds=seeds, seed=seed, name=name,
                   storage_path=str(root), verbose=0, confirm=False, save_members="none", min_steps=50, **kw)
    return root / name, time.perf_counter() - t


def _compute(out: Path, dataset: str, budget: float) -> tuple[float, int]:
    """Training compute spent (param-steps: member-steps x P) and member-steps, full trials and halving rungs."""
    from tuneall.rundir import journal
    from tuneall.core.budget import Budget
    from tuneall.data import dataset_info
    from tuneall.planning.points import plan_point

    info, b = dataset_info(dataset), Budget(budget, min_steps=1)
    total, steps = 0.0, 0
    for r in journal.read(out):
        m = r["metrics"]
        total += float(m.get("member_steps_trained", 0) or 0) * float(m.get("params_per_member", 0) or 0)
        steps += int(m.get("member_steps_trained", 0) or 0)
    rungs = out / "halving.jsonl"
    if rungs.exists():
        for line in rungs.read_text().splitlines():
            rec = json.loads(line)
            p = plan_point(rec["point"], b, info)
            total += float(rec["metrics"].get("member_steps_trained", 0) or 0) * p.params_per_member
            steps += int(rec["metrics"].get("member_steps_trained", 0) or 0)
    return total, steps


def _chosen(out: Path) -> tuple:
    import pandas as pd

    # The search's own answer (frontier.csv row 0: the answer rule, chosen on validation), not a re-ranking here.
    f = pd.read_csv(out / "frontier.csv")
    return tuple(f.iloc[0][KEY].fillna(-1).tolist())


def _p_best(out: Path) -> float | None:
    """P(best) the search itself reports for its answer (the paired bootstrap of :mod:`tuneall.reporting.ties`)."""
    import pandas as pd

    f = pd.read_csv(out / "frontier.csv")
    return float(f.iloc[0]["p_best"]) if "p_best" in f and len(f) else None


def _tie_keys(out: Path) -> set:
    import pandas as pd

    from tuneall.reporting.ties import tie_set

    t = pd.read_csv(out / "trials.csv", dtype={"trial_id": str})
    table, _ = tie_set(t, "val_ensemble_acc", "max")  # the plateau on the split that chooses
    tied = set(table[table["tied"]]["trial_id"])
    rows = t[t["trial_id"].isin(tied)].drop_duplicates("trial_id")
    return {tuple(r) for r in rows[KEY].fillna(-1).itertuples(index=False)}


def same_cells(a: Path, b: Path) -> tuple[int, int]:
    """(cells equal bit for bit, cells compared) between two searches' trials.csv, matched by allocation and
    repeat: the member store's answers against fresh training."""
    import pandas as pd

    ta, tb = (pd.read_csv(p / "trials.csv") for p in (a, b))
    on = KEY + ["repeat"]
    m = ta[ta["status"] == "ok"].fillna({c: -1 for c in KEY}).merge(
        tb[tb["status"] == "ok"].fillna({c: -1 for c in KEY}), on=on, suffixes=("_a", "_b"))
    equal = sum(int((m[f"{c}_a"] == m[f"{c}_b"]).sum()) for c in CELLS)
    return equal, len(m) * len(CELLS)


def summary_rows(agg, cells: tuple[int, int], reuse_steps: dict) -> list[dict]:
    """One summary row per method: compute against the exhaustive grid's, with the tie-set hit rate; for the grid
    with reuse, a row of member-steps against the grid's (the issue's goal) naming every case."""
    ref = agg.loc["grid (exhaustive, reference)"]
    r = agg.loc["grid + member reuse"]
    rows = [C.row("grid + member reuse: member-steps", float(r["member_steps_x_ref"]), "exhaustive grid", 1.0, "x grid",
                  f"<= {REUSE_GOAL} x grid on paper.yaml, mnist1d C=1e7",
                  bool(reuse_steps.get("mnist1d C=1e+07", 1.0) <= REUSE_GOAL) if "mnist1d C=1e+07" in reuse_steps
                  else None,
                  "per case: " + "; ".join(f"{c} x{v:.3f}" for c, v in reuse_steps.items())
                  + f"; {cells[0]} of {cells[1]} cells bit-identical to the exhaustive grid's")]
    for method, r in agg.iterrows():
        note = (f"chosen in the grid's tie set in {r['in_tie_set']:.0%} of {int(r['runs'])} runs; "
                f"wall x{r['wall_x_ref']:.2f} of the grid's, {r['wall_x_C_seeds']:.2f} x the grid's wall time "
                "per C x seeds")
        goal, met = "", None
        if method == "halving":
            goal = f"<= {HALVING_COST_GOAL:g} x C x seeds, in the tie set >= {HALVING_HIT_GOAL:.0%}"
            met = bool(r["compute_x_C_seeds"] <= HALVING_COST_GOAL and r["in_tie_set"] >= HALVING_HIT_GOAL)
        elif method in ("tpe", "random"):
            note += f"; {r['trials']:g} trials a run on average (matched to halving's compute)"
        rows.append(C.row(f"{method}: compute / (C x seeds)", float(r["compute_x_C_seeds"]), "exhaustive grid",
                          float(ref["compute_x_C_seeds"]), "x C", goal, met, note))
    return rows


RUNS_LOG = C.OUT_DIR / "search_cost_held_out_runs.jsonl"
REFERENCE = "grid (exhaustive, reference)"


def _plain(o):
    """A numpy scalar as the Python number it holds (JSON's default)."""
    return o.item() if hasattr(o, "item") else str(o)


def _read_runs(path: Path, seeds: int) -> dict:
    """(case, method, seed) -> the run's record, from the held-out runs log: only runs made with ``seeds`` repeats
    per allocation (another count measures another search); a damaged line is skipped."""
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if r.get("seeds") == seeds:
                done[(r["case"], r["method"], r["seed"])] = r
    return done


def held_out(args, head: dict) -> None:
    """The held-out cases: per case and searcher, compute / (C x seeds), wall / (the grid with reuse's wall), P(best)
    of the chosen allocation and whether it lies in the grid's tie set; every run kept, for or against a searcher.

    Each finished run is appended to ``--runs`` (a JSON line, with the tie set a grid run found) the moment it ends,
    and a run found there is not run again: hours of runs survive a stop, and the run continues where it left off
    (the same machine; the header records its load)."""
    import pandas as pd

    log = Path(args.runs)
    log.parent.mkdir(parents=True, exist_ok=True)
    done = _read_runs(log, args.seeds)
    root = Path(tempfile.mkdtemp(prefix="search_cost_held_"))
    cases = [c for c in HELD_OUT if not args.case or c[2]["name"] in args.case]

    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=C.ROOT).stdout.strip() or None

    def record(rec: dict) -> dict:
        # Each run says which code and how loaded a machine measured it (a log may span sittings).
        rec = {**rec, "seeds": args.seeds, "commit": commit, "load_average": C.load_average()}
        rec = json.loads(json.dumps(rec, default=_plain))  # numpy scalars as numbers, as a reader gets them back
        with open(log, "a") as f:
            f.write(json.dumps(rec) + "\n")
        done[(rec["case"], rec["method"], rec["seed"])] = rec
        print(json.dumps({k: v for k, v in rec.items() if k != "tie_keys"}), flush=True)
        return rec

    def label(space, dataset, budget) -> str:
        return f"{space['name']}: {dataset} C={budget:g}"

    def measure(method, out, wall, sd, dataset, budget, space, trials=None, **extra):
        compute, steps = _compute(out, dataset, budget)
        return {"case": label(space, dataset, budget), "method": method, "seed": sd,
                "compute_x_C_seeds": compute / (budget * args.seeds), "member_steps": steps, "wall_s": wall,
                "p_best": _p_best(out), "chosen": list(_chosen(out)), "trials": trials, **extra}

    # Every case's reference first, then search seed by search seed over all cases: a run stopped midway leaves
    # whole seeds of every case, not every seed of some.
    try:
        for dataset, budget, space in ([] if args.summarize else cases):
            if (label(space, dataset, budget), REFERENCE, 0) not in done:
                # A unit of wall time, as in the tuning cases: the exhaustive grid's wall per C x seeds it trained.
                ref, wall = _search(root, f"ref-{space['name']}", dataset, budget, args.seeds, 0, space,
                                    searcher="grid", member_store=False)
                rec = measure(REFERENCE, ref, wall, 0, dataset, budget, space)
                record({**rec, "unit_s": wall / rec["compute_x_C_seeds"]})
        for sd in range(0 if args.summarize else args.search_seeds):
            for dataset, budget, space in cases:
                case, name, at = label(space, dataset, budget), f"{space['name']}-{sd}", (dataset, budget, space)
                if (case, "grid + member reuse", sd) not in done:
                    grid, wall = _search(root, f"grid-{name}", dataset, budget, args.seeds, sd, space,
                                         searcher="grid")
                    record(measure("grid + member reuse", grid, wall, sd, *at,
                                   tie_keys=sorted(_tie_keys(grid), key=str)))
                if (case, "halving", sd) not in done:
                    out, wall = _search(root, f"halving-{name}", dataset, budget, args.seeds, sd, space,
                                        searcher="halving")
                    record(measure("halving", out, wall, sd, *at))
                # TPE and random at halving's compute: as many trials as it spent budgets (each costs C x seeds).
                trials = max(2, round(done[(case, "halving", sd)]["compute_x_C_seeds"]))
                for method in ("tpe", "random"):
                    if (case, method, sd) not in done:
                        out, wall = _search(root, f"{method}-{name}", dataset, budget, args.seeds, sd, space,
                                            searcher=method, trials=trials)
                        record(measure(method, out, wall, sd, *at, trials))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    runs, missing = [], 0
    methods = ("grid + member reuse", "halving", "tpe", "random")
    for dataset, budget, space in cases:
        case = f"{space['name']}: {dataset} C={budget:g}"
        for sd in range(args.search_seeds):
            if any((case, m, sd) not in done for m in methods) or (case, REFERENCE, 0) not in done:
                missing += 1  # --summarize of a run stopped midway: whole (case, seed) groups only
                continue
            unit = done[(case, REFERENCE, 0)]["unit_s"]
            grid = done[(case, "grid + member reuse", sd)]
            ties = {tuple(k) for k in grid["tie_keys"]}
            for method in methods:
                r = done[(case, method, sd)]
                runs.append({**{k: v for k, v in r.items() if k != "tie_keys"},
                             "wall_x_grid": r["wall_s"] / grid["wall_s"], "wall_units": r["wall_s"] / unit,
                             "in_tie_set": tuple(r["chosen"]) in ties, "tie_set_size": len(ties)})
    if not runs:
        print(f"no complete (case, search seed) in {log}")
        return
    if missing:
        print(f"{missing} (case, search seed) group(s) not complete in {log}: left out (a partial result)")
    df = pd.DataFrame(runs)
    cols = ["compute_x_C_seeds", "wall_x_grid", "wall_units", "p_best", "in_tie_set"]
    by_case = df.groupby(["case", "method"], sort=False)[cols].mean()
    agg = df.groupby("method", sort=False)[cols].mean()
    print(by_case.to_string())
    print(agg.to_string())
    cost, wall, hit = HELD_OUT_GOAL
    # A unit of wall time is the issue's: the reference grid's wall time per C x seeds that it trained.
    rows = []
    for method, r in agg.iterrows():
        n = int((df["method"] == method).sum())
        rows.append(C.row(f"held-out, {method}: compute / (C x seeds)", float(r["compute_x_C_seeds"]),
                          "grid + member reuse", float(agg.loc["grid + member reuse", "compute_x_C_seeds"]), "x C",
                          f"<= {cost:g} x C x seeds, <= {wall:g} units of wall, in the tie set >= {hit:.0%}" if method != "grid + member reuse"
                          else "", bool(r["compute_x_C_seeds"] <= cost and r["wall_units"] <= wall
                                        and r["in_tie_set"] >= hit) if method != "grid + member reuse" else None,
                          f"chosen in the grid's tie set in {r['in_tie_set']:.0%} of {n} runs; mean P(best) of the "
                          f"choice {r['p_best']:.2f}; wall {r['wall_units']:.2f} units, x{r['wall_x_grid']:.2f} of "
                          "the grid with reuse"))
    # A partial run (some cases, fewer search seeds) never replaces the committed full one.
    C.write_result("search_cost_held_out" + ("_partial" if head["quick"] or missing else ""), {**head, "rows": rows, "runs": runs, "seeds": args.seeds,
                                            "units": {c: done[(c, REFERENCE, 0)]["unit_s"] for c in df["case"].unique()},
                                            "cases": [dict(space, dataset=d, budget=b) for d, b, space in HELD_OUT],
                                            "by_case": json.loads(by_case.reset_index().to_json(orient="records")),
                                            "command": " ".join(["python benchmarks/search_cost.py", *sys.argv[1:]])})
    C.print_rows(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--held-out", action="store_true", help="the held-out cases (issue 25) instead")
    p.add_argument("--case", action="append", choices=[c[2]["name"] for c in HELD_OUT],
                   help="with --held-out: only this case (repeatable)")
    p.add_argument("--search-seeds", type=int, default=3)
    p.add_argument("--seeds", type=int, default=3, help="repeats of each allocation")
    p.add_argument("--summarize", action="store_true", help="with --held-out: write the result from the runs "
                   "log alone (whole case-and-seed groups), running nothing")
    p.add_argument("--runs", default=str(RUNS_LOG), help="with --held-out: the log of finished runs (a run found "
                   "there is not run again; delete it to start over)")
    args = p.parse_args()
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2", configure_logging=False)
    if args.held_out:
        try:
            held_out(args, C.header("search_cost_held_out", bool(args.case) or args.search_seeds < 3))
        finally:
            ray.shutdown()
        return
    head = C.header("search_cost", args.quick)
    root = Path(tempfile.mkdtemp(prefix="search_cost_"))
    runs, cells = [], [0, 0]
    try:
        for dataset, budget in CASES[args.quick]:
            case, scale = f"{dataset} C={budget:g}", budget * args.seeds
            ref, ref_wall = _search(root, f"ref-{dataset}-{budget:g}", dataset, budget, args.seeds, 0,
                                    searcher="grid", member_store=False)
            ties = {}  # search seed -> the grid's tie set at that seed's members (seeds set the member seeds)

            ref_compute, ref_steps = _compute(ref, dataset, budget)
            unit_wall = ref_wall / (ref_compute / scale)  # the reference grid's wall time per C x seeds trained

            def record(method, out, wall, seed, trials=None):
                compute, steps = _compute(out, dataset, budget)
                runs.append({"case": case, "method": method, "seed": seed, "compute_x_C_seeds": compute / scale,
                             "member_steps": steps, "member_steps_x_ref": steps / ref_steps,
                             "wall_x_ref": wall / ref_wall, "wall_x_C_seeds": wall / unit_wall,
                             "in_tie_set": _chosen(out) in ties[seed],
                             "tie_set_size": len(ties[seed]), "trials": trials})
                print(json.dumps(runs[-1]), flush=True)

            # The grid with member reuse at every search seed: its cells equal the exhaustive grid's at that seed bit
            # for bit (checked at seed 0), so its tie set is the plateau each searcher is judged against.
            for sd in range(args.search_seeds):
                out, wall = _search(root, f"reuse-{dataset}-{budget:g}-{sd}", dataset, budget, args.seeds, sd,
                                    searcher="grid")
                ties[sd] = _tie_keys(out)
                if sd == 0:
                    cells = [a + b for a, b in zip(cells, same_cells(ref, out))]
                    record("grid (exhaustive, reference)", ref, ref_wall, 0)
                record("grid + member reuse", out, wall, sd)
            for s in range(args.search_seeds):
                out, wall = _search(root, f"halving-{dataset}-{budget:g}-{s}", dataset, budget, args.seeds, s,
                                    searcher="halving")
                record("halving", out, wall, s)
            # TPE and random at halving's compute: as many trials as it spent budgets (each trial costs C x seeds).
            spent = [r["compute_x_C_seeds"] for r in runs if r["case"] == case and r["method"] == "halving"]
            trials = max(2, round(sum(spent) / len(spent)))
            for label in ("tpe", "random"):
                for s in range(args.search_seeds):
                    out, wall = _search(root, f"{label}-{dataset}-{budget:g}-{s}", dataset, budget, args.seeds, s,
                                        searcher=label, trials=trials)
                    record(label, out, wall, s, trials)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    import pandas as pd

    df = pd.DataFrame(runs)
    agg = df.groupby("method", sort=False).agg(compute_x_C_seeds=("compute_x_C_seeds", "mean"),
                                               member_steps_x_ref=("member_steps_x_ref", "mean"),
                                               wall_x_ref=("wall_x_ref", "mean"),
                                               wall_x_C_seeds=("wall_x_C_seeds", "mean"),
                                               in_tie_set=("in_tie_set", "mean"), runs=("seed", "count"),
                                               trials=("trials", "mean"))
    by_case = df.groupby(["case", "method"], sort=False)[["compute_x_C_seeds", "member_steps_x_ref", "wall_x_ref",
                                                           "wall_x_C_seeds", "in_tie_set"]].mean()
    print(by_case.to_string())
    print(agg.to_string())
    reuse = df[df["method"] == "grid + member reuse"]
    rows = summary_rows(agg, tuple(cells), dict(zip(reuse["case"], reuse["member_steps_x_ref"])))
    C.print_rows(rows)
    C.write_result("search_cost", {**head, "rows": rows, "runs": runs, "space": SPACE, "seeds": args.seeds,
                                   "cases": [f"{d} C={b:g}" for d, b in CASES[args.quick]],
                                   "cells_identical": cells, "by_case": json.loads(by_case.reset_index().to_json(
                                       orient="records")),
                                   "command": "python benchmarks/search_cost.py" + (" --quick" if args.quick else "")})


if __name__ == "__main__":
    main()
