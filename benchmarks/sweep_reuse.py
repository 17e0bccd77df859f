"""Benchmark: a 5-budget sweep with anytime reuse against the same sweep trained fresh at every budget, in one run.

Both sweeps go through Ray Tune on the same local Ray, with the same allocations and seeds; reported are the
member-steps each trained (counted from the members' own step counters), the wall time of each sweep (Ray Tune
trials only, reports excluded), and the ratios. The cells of both must be identical (reuse is exact).

    python benchmarks/sweep_reuse.py              # digits, about 2-4 minutes on 2 cores
    python benchmarks/sweep_reuse.py --smoke      # seconds
    python benchmarks/sweep_reuse.py --local      # both sweeps in-process: no Ray start-up per trial
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: E402  (puts the repository root on sys.path)

import pandas as pd  # noqa: E402

from tuneall.planning.space import parse_space  # noqa: E402
from tuneall.api import sweep  # noqa: E402

SPACE = {"name": "bench", "families": ["cnn3"], "width": [0.25, 0.5], "k": [1, 2], "batch_size": 64}
PRESETS = {
    "default": dict(dataset="digits", budgets="5e5:8e6:5", seeds=2, min_steps=20),
    "smoke": dict(dataset="digits", budgets="2e5:8e5:5", seeds=1, min_steps=5),
}
KEY = ["width", "k", "budget", "rule", "repeat"]


def run(preset: dict, local: bool, out: Path, num_cpus: int | None) -> dict:
    import ray

    conf = dict(preset)
    budgets = conf.pop("budgets")
    started = False
    if not local and not ray.is_initialized():
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, configure_logging=False)
        started = True
    rows = {}
    try:
        for reuse in (True, False):
            name = "reuse" if reuse else "fresh"
            t = time.perf_counter()
            # Anytime reuse alone (the member store, which also shares members across k, is measured by
            # benchmarks/search_cost.py and tests/test_sweep.py).
            d = sweep(budgets, space=parse_space(SPACE), reuse=reuse, storage_path=str(out), name=name, verbose=0,
                      per_budget_reports=False, executor="local" if local else "ray", member_store=False, **conf)
            total = time.perf_counter() - t
            meta = json.loads((d / "sweep.json").read_text())["sweep"]
            rows[name] = {"dir": d, "member_steps": meta["member_steps_trained"], "trials": meta["jobs"],
                          "wall_s": meta["wall_time_s"], "total_s": total,
                          "largest_budget_member_steps": meta["member_steps_largest_budget"]}
    finally:
        if started:
            ray.shutdown()
    a = pd.read_csv(rows["reuse"]["dir"] / "cells.csv").sort_values(KEY, ignore_index=True)
    b = pd.read_csv(rows["fresh"]["dir"] / "cells.csv").sort_values(KEY, ignore_index=True)
    same = len(a) == len(b) and (a["ensemble_acc"].to_numpy() == b["ensemble_acc"].to_numpy()).all()
    return {**{f"{k}_{m}": v[m] for k, v in rows.items() for m in ("member_steps", "trials", "wall_s", "total_s")},
            "largest_budget_member_steps": rows["reuse"]["largest_budget_member_steps"], "budgets": budgets,
            "cells": len(a), "cells_identical": bool(same),
            "member_steps_ratio": rows["fresh"]["member_steps"] / rows["reuse"]["member_steps"],
            "wall_ratio": rows["fresh"]["wall_s"] / rows["reuse"]["wall_s"],
            "executor": "local" if local else "ray"}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--local", action="store_true", help="run both sweeps in this process instead of Ray Tune")
    p.add_argument("--num-cpus", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    out = C.header("sweep_reuse", args.smoke)
    with tempfile.TemporaryDirectory() as tmp:
        r = run(PRESETS["smoke" if args.smoke else "default"], args.local, Path(tmp), args.num_cpus)
    print(f"\n5-budget sweep {r['budgets']} ({r['executor']}), {r['cells']} cells; reused cells identical to fresh "
          f"ones: {r['cells_identical']}")
    print(f"{'':8s} {'trials':>7s} {'member-steps':>13s} {'wall s':>8s}")
    for name in ("reuse", "fresh"):
        print(f"{name:8s} {r[f'{name}_trials']:7d} {r[f'{name}_member_steps']:13,d} {r[f'{name}_wall_s']:8.1f}")
    print(f"fresh / reuse: member-steps x{r['member_steps_ratio']:.2f}, wall time x{r['wall_ratio']:.2f}; "
          f"reuse trained {r['reuse_member_steps']:,} = largest budget alone {r['largest_budget_member_steps']:,}")
    out.update(r)
    out["rows"] = [C.row("5-budget sweep member-steps, anytime reuse", r["reuse_member_steps"],
                         "same sweep trained fresh at every budget", r["fresh_member_steps"], "steps",
                         "= largest budget alone", r["reuse_member_steps"] <= r["largest_budget_member_steps"]),
                   C.row("5-budget sweep wall time, anytime reuse", r["reuse_wall_s"],
                         "same sweep trained fresh at every budget", r["fresh_wall_s"], "s")]
    out["elapsed_s"] = time.perf_counter() - t_start
    C.print_rows(out["rows"])
    if not args.smoke:
        print(f"wrote {C.write_result('sweep_reuse', out)}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(r, indent=1))
    return r


if __name__ == "__main__":
    main()
