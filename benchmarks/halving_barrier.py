"""Halving's wall time with trial processes kept across rung barriers (``runner/trials.idle_processes_kept``) against
Ray Tune's own rule (one idle process kept, the rest stopped), and TPE at 3 trials beside them, in one run.

Each search is a fresh process running ``tuneall.search`` on digits at C = 3e6 (the packaged ``paper`` space, 2 seeds
per allocation); the baseline replaces ``idle_processes_kept`` with a no-op in its process. The two halving variants
alternate, so machine drift falls on both. Recorded per run: wall time, the answer, and how many trial processes ran
the search (distinct ``pid`` over its trials' results).

    python benchmarks/halving_barrier.py            # 3 rounds
    python benchmarks/halving_barrier.py --quick    # 1 round
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C

SEARCH = """
import sys, contextlib
import tuneall
if sys.argv[2] == "ray-rule":
    import tuneall.runner.trials as T
    T.idle_processes_kept = lambda n: contextlib.nullcontext()
kw = dict(searcher="halving") if sys.argv[3] == "halving" else dict(searcher="tpe", trials=3)
tuneall.search(dataset="digits", budget=3e6, seeds=2, storage_path=sys.argv[1], name="s", verbose=0,
               confirm=False, save_members="none", **kw)
"""


def _run(root: Path, variant: str, searcher: str) -> dict:
    out = root / f"{variant}-{searcher}-{time.monotonic_ns()}"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", SEARCH, str(out), variant, searcher], check=True, cwd=C.ROOT,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    pids = {json.loads(line)["pid"] for f in (out / "s").glob("*/result.json") for line in f.read_text().splitlines()}
    import pandas as pd

    best = pd.read_csv(out / "s" / "frontier.csv").iloc[0]
    return {"variant": variant, "searcher": searcher, "wall_s": wall, "trial_processes": len(pids),
            "answer": [best["family"], float(best["width"]), int(best["k"])]}


def main():
    args = C.parse_args(__doc__.splitlines()[0])
    head = C.header("halving_barrier", args.quick)
    root = Path(tempfile.mkdtemp(prefix="halving_barrier_"))
    runs = []
    for _ in range(1 if args.quick else 3):
        for variant, searcher in (("ray-rule", "halving"), ("kept", "halving"), ("kept", "tpe")):
            runs.append(_run(root, variant, searcher))
            print(json.dumps(runs[-1]), flush=True)
    wall = {v: C.median([r["wall_s"] for r in runs if (r["variant"], r["searcher"]) == v])
            for v in (("ray-rule", "halving"), ("kept", "halving"), ("kept", "tpe"))}
    same = len({json.dumps(r["answer"]) for r in runs if r["searcher"] == "halving"}) == 1
    rows = [C.row("halving wall, idle processes kept (median s)", wall[("kept", "halving")],
                  "halving wall, Ray Tune's rule", wall[("ray-rule", "halving")], "s", "< 1", None,
                  f"same answer in every halving run: {same}"),
            C.row("halving wall, idle processes kept (median s)", wall[("kept", "halving")],
                  "TPE at 3 trials", wall[("kept", "tpe")], "s", "<= 1 (issue 25)",
                  wall[("kept", "halving")] <= wall[("kept", "tpe")])]
    C.write_result("halving_barrier", {**head, "rows": rows, "runs": runs})
    C.print_rows(rows)


if __name__ == "__main__":
    main()
