"""Every benchmark, one after another, then ``results/benchmarks/summary.md``: each figure next to its baseline and
the ratio, the goal where the issue sets one, and the machine it ran on.

    python benchmarks/run_all.py            # about 10 minutes on 2 cores
    python benchmarks/run_all.py --quick    # a smoke run (about 3 minutes)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import _common as C

BENCHMARKS = ["cli_startup", "step_efficiency", "step_profile", "vectorized_members", "search_efficiency", "sweep_reuse"]
# Run on their own (minutes each), listed in the summary when their latest output exists.
SEPARATE = ["compile_member", "kill_resume", "search_cost", "search_cost_held_out", "halving_barrier", "search_peer",
            "shared_store", "store_cluster"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default=None, help="comma-separated subset of " + ", ".join(BENCHMARKS))
    args = p.parse_args()
    names = args.only.split(",") if args.only else BENCHMARKS
    here = C.ROOT / "benchmarks"
    t0 = time.perf_counter()
    for name in names:
        flag = ("--smoke" if name == "sweep_reuse" else "--quick") if args.quick else None
        print(f"\n=== {name}", flush=True)
        t = time.perf_counter()
        rc = subprocess.call([sys.executable, str(here / f"{name}.py"), *([flag] if flag else [])], cwd=C.ROOT)
        print(f"=== {name}: exit {rc}, {time.perf_counter() - t:.0f} s", flush=True)
        if rc != 0:
            sys.exit(rc)
    if not args.quick:
        path = write_summary()
        print(f"\nall benchmarks in {time.perf_counter() - t0:.0f} s; summary: {path}")


def write_summary():
    lines = ["# Benchmarks", "", "Written by `python benchmarks/run_all.py`; each figure is measured in the same run "
             "as its baseline. Raw numbers: the JSON files beside this one.", ""]
    machine = None
    for name in BENCHMARKS + SEPARATE:
        path = C.OUT_DIR / f"{name}.json"
        if not path.exists():
            continue
        d = json.loads(path.read_text())
        machine = machine or d.get("machine")
        how = "" if name in BENCHMARKS else \
            f" (not part of run_all: `{d.get('command') or f'python benchmarks/{name}.py'}`)"
        lines += [f"## {name}{how}", "", f"Run {d.get('started')} (load average at start {d.get('load_average_at_start')})"
                  f"{', decision: ' + d['decision'] if d.get('decision') else ''}.", "",
                  "| figure | value | baseline | baseline value | ratio | goal | met | note |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in d.get("rows", []):
            met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
            lines.append(f"| {r['figure']} | {r['value']:.4g} {r['unit']} | {r['baseline']} | "
                         f"{r['baseline_value']:.4g} | {r['ratio']:.3f} | {r['goal']} | {met} | {r.get('note', '')} |")
        lines.append("")
    if machine:
        lines += ["## Machine", "", "```", json.dumps(machine, indent=1), "```", ""]
    out = C.OUT_DIR / "summary.md"
    out.write_text("\n".join(lines))
    return out


if __name__ == "__main__":
    main()
