"""Search cost (issue 13): what each searcher spends and whether it finds the grid's plateau.

Per case (dataset, budget C) the exhaustive grid without the member store is the reference (today's cost; its tie
set, :mod:`tuneall.ties`, is the plateau). Then, over several search seeds: the grid with member reuse, TPE and
random at a fixed number of trials, and ``--searcher halving``. Per method: training compute (member-steps x each
member's step cost, rungs included) as a multiple of C x seeds, wall time as a multiple of the reference grid's,
and whether the chosen allocation lies in the reference grid's tie set. One local Ray serves every search.

    python benchmarks/search_cost.py --quick   # digits and mnist1d at one budget each, 3 search seeds
    python benchmarks/search_cost.py           # two budgets each
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import _common as C

SPACE = {"name": "cost", "families": ["cnn3"], "width": [0.25, 0.5, 1.0, 2.0], "k": [1, 2, 4, 8]}
CASES = {True: [("digits", 3e6), ("mnist1d", 3e6)],
         False: [("digits", 3e6), ("digits", 1e7), ("mnist1d", 3e6), ("mnist1d", 1e7)]}
KEY = ["width", "depth", "k", "data_fraction", "optimizer", "weight_decay", "label_smoothing"]


def _search(root: Path, name: str, dataset: str, budget: float, seeds: int, seed: int, **kw):
    import tuneall
    from tuneall.space import parse_space

    t = time.perf_counter()
    tuneall.search(budget=budget, dataset=dataset, space=parse_space(SPACE), seeds=seeds, seed=seed, name=name,
                   storage_path=str(root), verbose=0, confirm=False, save_members="none", min_steps=50, **kw)
    return root / name, time.perf_counter() - t


def _compute(out: Path, dataset: str, budget: float) -> float:
    """Training compute spent (param-steps: member-steps x P), full trials and halving rungs."""
    import pandas as pd

    from tuneall import journal
    from tuneall.budget import Budget
    from tuneall.data import dataset_info
    from tuneall.planning import plan_point

    info, b = dataset_info(dataset), Budget(budget, min_steps=1)
    total = 0.0
    for r in journal.read(out):
        m = r["metrics"]
        total += float(m.get("member_steps_trained", 0) or 0) * float(m.get("params_per_member", 0) or 0)
    rungs = out / "halving.jsonl"
    if rungs.exists():
        for line in rungs.read_text().splitlines():
            rec = json.loads(line)
            p = plan_point(rec["point"], b, info)
            total += float(rec["metrics"].get("member_steps_trained", 0) or 0) * p.params_per_member
    return total


def _chosen(out: Path) -> tuple:
    import pandas as pd

    s = pd.read_csv(out / "trials_summary.csv")
    # As the search chooses: on validation (the default objective), test reported beside it.
    s = s[s["status"] == "ok"].sort_values("val_ensemble_acc_mean", ascending=False)
    return tuple(s.iloc[0][KEY].fillna(-1).tolist())


def _tie_keys(out: Path) -> set:
    import pandas as pd

    from tuneall.ties import tie_set

    t = pd.read_csv(out / "trials.csv", dtype={"trial_id": str})
    table, _ = tie_set(t, "val_ensemble_acc", "max")  # the plateau on the split that chooses
    tied = set(table[table["tied"]]["trial_id"])
    rows = t[t["trial_id"].isin(tied)].drop_duplicates("trial_id")
    return {tuple(r) for r in rows[KEY].fillna(-1).itertuples(index=False)}


def summary_rows(agg) -> list[dict]:
    """One summary row per method: compute against the exhaustive grid's, with the tie-set hit rate."""
    ref = agg.loc["grid (exhaustive, reference)"]
    rows = []
    for method, r in agg.iterrows():
        reuse = method == "grid + member reuse"
        ratio = r["compute_x_C_seeds"] / ref["compute_x_C_seeds"]
        rows.append(C.row(f"{method}: compute / (C x seeds)", float(r["compute_x_C_seeds"]), "exhaustive grid",
                          float(ref["compute_x_C_seeds"]), "x C", "<= 0.45 x grid" if reuse else "",
                          bool(ratio <= 0.45) if reuse else None,
                          f"chosen in the grid's tie set in {r['in_tie_set']:.0%} of {int(r['runs'])} runs; "
                          f"wall x{r['wall_x_ref']:.2f} of the grid's"))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--search-seeds", type=int, default=3)
    p.add_argument("--trials", type=int, default=6, help="trials of TPE and random")
    p.add_argument("--seeds", type=int, default=2, help="repeats of each allocation")
    args = p.parse_args()
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.2", configure_logging=False)
    head = C.header("search_cost", args.quick)
    root = Path(tempfile.mkdtemp(prefix="search_cost_"))
    runs, rows = [], []
    try:
        for dataset, budget in CASES[args.quick]:
            ref, ref_wall = _search(root, f"ref-{dataset}-{budget:g}", dataset, budget, args.seeds, 0,
                                    searcher="grid", member_store=False)
            scale = budget * args.seeds
            ties = _tie_keys(ref)
            ref_cost = _compute(ref, dataset, budget) / scale
            runs.append({"case": f"{dataset} C={budget:g}", "method": "grid (exhaustive, reference)", "seed": 0,
                         "compute_x_C_seeds": ref_cost, "wall_x_ref": 1.0, "in_tie_set": _chosen(ref) in ties,
                         "tie_set_size": len(ties)})
            methods = [("grid + member reuse", {"searcher": "grid"}),
                       ("tpe", {"searcher": "tpe", "trials": args.trials}),
                       ("random", {"searcher": "random", "trials": args.trials}),
                       ("halving", {"searcher": "halving"})]
            for label, kw in methods:
                for s in range(args.search_seeds):
                    out, wall = _search(root, f"{label.split()[0]}-{dataset}-{budget:g}-{s}", dataset, budget,
                                        args.seeds, s, **kw)
                    runs.append({"case": f"{dataset} C={budget:g}", "method": label, "seed": s,
                                 "compute_x_C_seeds": _compute(out, dataset, budget) / scale,
                                 "wall_x_ref": wall / ref_wall, "in_tie_set": _chosen(out) in ties,
                                 "tie_set_size": len(ties)})
                    print(json.dumps(runs[-1]), flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    import pandas as pd

    df = pd.DataFrame(runs)
    agg = df.groupby("method", sort=False).agg(compute_x_C_seeds=("compute_x_C_seeds", "mean"),
                                               wall_x_ref=("wall_x_ref", "mean"),
                                               in_tie_set=("in_tie_set", "mean"), runs=("seed", "count"))
    print(agg.to_string())
    ref = agg.loc["grid (exhaustive, reference)"]
    rows += summary_rows(agg)
    C.print_rows(rows)
    C.write_result("search_cost", {**head, "rows": rows, "runs": runs, "space": SPACE, "seeds": args.seeds,
                                   "trials": args.trials, "command": "python benchmarks/search_cost.py"
                                   + (" --quick" if args.quick else "")})


if __name__ == "__main__":
    main()
