"""Benchmark: a member store shared across runs (``--member-store DIR``), against the same runs on stores of their own.

(a) A grid search at C, then the same grid at 3C on the same store, against the 3C grid alone: member-steps each
    trained (from the trials' own counters) and the answers (every trial's metrics must be identical). Goal: the 3C
    search trains exactly the member-steps the C search did not (3C alone minus C: about 0.67 x 3C alone).
(b) A sweep over {C/3, C, 3C} after the search at C (on a copy of the store as the C search left it), against the
    same sweep alone. Goal: the sweep trains nothing the search already trained (sweep alone minus the search).
Where a later run needs an evaluation below a stored member's last step that no earlier trial made (T(4, 3C) =
3/4 T(1, C)), the store replays it from the member's grid state below it (tuneall.store.replay): those member-steps
are counted as trained and reported apart ("replayed"). Also measured: what the grid states cost (record bytes,
and the training time of one member with and without them, interleaved).

    python benchmarks/shared_store.py            # digits, a few minutes on 2 cores
    python benchmarks/shared_store.py --quick    # smaller budgets
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: E402  (puts the repository root on sys.path)

from tuneall.planning.space import parse_space  # noqa: E402

SPACE = {"name": "bench", "families": ["cnn3"], "width": [0.25, 0.5], "k": [1, 2, 4], "batch_size": 64}
PRESETS = {"default": dict(budget=3e6, seeds=2, min_steps=20), "quick": dict(budget=1e6, seeds=1, min_steps=10)}
ANSWER = ("val_ensemble_acc_mean", "ensemble_acc_mean", "ensemble_nll_mean", "val_ensemble_nll_mean")


def _search(budget, store, name, out, p) -> dict:
    from tuneall.api import search
    from tuneall.rundir import journal

    t = time.perf_counter()
    search(budget, dataset="digits", space=parse_space(SPACE), searcher="grid", seeds=p["seeds"],
           min_steps=p["min_steps"], storage_path=str(out), name=name, verbose=0, member_store=store, confirm=False,
           save_members="none")
    wall = time.perf_counter() - t
    recs = journal.read(out / name)
    m = [r["metrics"] for r in recs]
    return {"trained": sum(x.get("member_steps_trained", 0) for x in m),
            "replayed": sum(x.get("member_steps_replayed", 0) for x in m), "trials": len(m), "wall_s": wall,
            "answers": {journal.point_key(r["config"]): tuple(r["metrics"].get(a) for a in ANSWER) for r in recs}}


def _sweep(budgets, store, name, out, p) -> dict:
    import json

    import pandas as pd

    from tuneall.api import sweep

    d = sweep(budgets, dataset="digits", space=parse_space(SPACE), seeds=p["seeds"], min_steps=p["min_steps"],
              storage_path=str(out), name=name, verbose=0, member_store=store, executor="local",
              per_budget_reports=False)
    s = json.loads((d / "sweep.json").read_text())["sweep"]
    cells = pd.read_csv(d / "cells.csv").sort_values(["width", "k", "budget", "rule", "repeat"], ignore_index=True)
    return {"trained": s["member_steps_trained"], "replayed": s.get("member_steps_replayed", 0),
            "wall_s": s["wall_time_s"], "cells": cells[["ensemble_acc", "val_ensemble_acc", "ensemble_nll"]]}


def _state_cost(store: Path, reps: int = 4) -> dict:
    """Bytes the grid states take in the records, and one member's training time with / without them."""
    import torch

    from tuneall.core.config import TrainConfig
    from tuneall.data import load_dataset
    from tuneall.store import records as S
    from tuneall.store.replay import grid_steps
    from tuneall.training.member import state_bytes, train_member

    total = ckpt = 0
    for path in store.glob("*.pt"):
        rec = S.MemberStore(store).load(path.stem)
        total += path.stat().st_size
        ckpt += state_bytes(rec.checkpoints) if rec else 0
    data, cfg, steps = load_dataset("digits"), TrainConfig(batch_size=64), 2000
    torch.set_num_threads(1)
    times = {"with": [], "without": []}
    for rep in range(reps):  # interleaved, in alternating order: a burst of load from elsewhere hits both
        for kind in (("without", "with") if rep % 2 == 0 else ("with", "without")):
            t = time.perf_counter()
            train_member("cnn3", 0.5, None, data, steps, 0, cfg, keep_state=True,
                         checkpoint_steps=grid_steps(steps) if kind == "with" else ())
            times[kind].append(time.perf_counter() - t)
    return {"record_bytes": total, "grid_state_bytes": ckpt, "member_time_with_s": C.median(times["with"]),
            "member_time_without_s": C.median(times["without"]), "member_steps_timed": steps}


def run(p: dict, out: Path) -> dict:
    import ray

    c = p["budget"]
    shared, copy = out / "shared", out / "after_c"
    ray.init(address="local", include_dashboard=False, configure_logging=False)
    try:
        first = _search(c, str(shared), "c", out, p)
        shutil.copytree(shared, copy)  # the store as the C search left it, for (b)
        later = _search(3 * c, str(shared), "c3_shared", out, p)
        alone = _search(3 * c, True, "c3_alone", out, p)
    finally:
        ray.shutdown()
    budgets = (c / 3, c, 3 * c)
    sw_shared = _sweep(budgets, str(copy), "sweep_shared", out, p)
    sw_alone = _sweep(budgets, True, "sweep_alone", out, p)
    same_answers = later["answers"] == alone["answers"]
    same_cells = sw_shared["cells"].equals(sw_alone["cells"])
    r = {"budget_c": c, "sweep_budgets": list(budgets), "seeds": p["seeds"], "space": SPACE,
         "search_c": {k: v for k, v in first.items() if k != "answers"},
         "search_3c_after_c": {k: v for k, v in later.items() if k != "answers"},
         "search_3c_alone": {k: v for k, v in alone.items() if k != "answers"},
         "sweep_after_search": {k: v for k, v in sw_shared.items() if k != "cells"},
         "sweep_alone": {k: v for k, v in sw_alone.items() if k != "cells"},
         "search_answers_identical": same_answers, "sweep_cells_identical": bool(same_cells),
         **_state_cost(copy)}
    r["goal_3c_after_c"] = alone["trained"] - first["trained"]
    r["goal_sweep_after_search"] = sw_alone["trained"] - first["trained"]
    return r


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    out = C.header("shared_store", args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        r = run(PRESETS["quick" if args.quick else "default"], Path(tmp))
    a, al, f = r["search_3c_after_c"], r["search_3c_alone"], r["search_c"]
    sw, swa = r["sweep_after_search"], r["sweep_alone"]
    print(f"\n(a) grid at C = {r['budget_c']:.3g}: {f['trained']:,} member-steps; at 3C after it on the shared store: "
          f"{a['trained']:,} ({a['replayed']:,} replayed); 3C alone: {al['trained']:,}; goal (alone - C): "
          f"{r['goal_3c_after_c']:,}; answers identical: {r['search_answers_identical']}")
    print(f"(b) sweep {r['sweep_budgets']} after the search: {sw['trained']:,} ({sw['replayed']:,} replayed); alone: "
          f"{swa['trained']:,}; goal (alone - search): {r['goal_sweep_after_search']:,}; cells identical: "
          f"{r['sweep_cells_identical']}")
    print(f"grid states: {r['grid_state_bytes']:,} of {r['record_bytes']:,} record bytes; one member "
          f"({r['member_steps_timed']} steps) {r['member_time_with_s']:.2f} s with them, "
          f"{r['member_time_without_s']:.2f} s without")
    out.update(r)
    out["rows"] = [
        C.row("grid search at 3C after C, shared store: member-steps", a["trained"], "3C grid alone", al["trained"],
              "steps", f"= alone - C ({r['goal_3c_after_c'] / al['trained']:.3f} x alone)",
              a["trained"] == r["goal_3c_after_c"], f"{a['replayed']:,} replayed from grid states; answers "
              f"identical: {r['search_answers_identical']}"),
        C.row("sweep C/3..3C after the search at C: member-steps", sw["trained"], "same sweep alone", swa["trained"],
              "steps", f"= alone - search ({r['goal_sweep_after_search'] / swa['trained']:.3f} x alone)",
              sw["trained"] == r["goal_sweep_after_search"], f"{sw['replayed']:,} replayed from grid states; cells "
              f"identical: {r['sweep_cells_identical']}"),
        C.row("grid states in the C search's records", r["grid_state_bytes"], "record bytes in all",
              r["record_bytes"], "bytes"),
        C.row("one member's training time with grid states", r["member_time_with_s"], "without",
              r["member_time_without_s"], "s"),
    ]
    out["elapsed_s"] = time.perf_counter() - t0
    C.print_rows(out["rows"])
    if not args.quick:
        print(f"wrote {C.write_result('shared_store', out)}")
    return r


if __name__ == "__main__":
    main()
