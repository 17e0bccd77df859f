"""Search efficiency: the fraction of a real ``tuneall search``'s wall time in which every CPU it holds is running
member training steps, for two thread placements on this machine, in one run.

    efficiency = sum over trials of (member training time x CPUs of the trial) / (search wall time x CPUs held)

The search is the real thing (``tuneall.search``: a local Ray started and stopped by tuneall, OptunaSearch, the trial
factory, the journal and the report), on ``digits``, with the grid searcher over cnn3 w=0.5 and k = 1..6 (every trial
trains the same member-steps, C / P) and 1 seed: six trials (three for the slower ``1 x 2`` placement, to keep the
benchmark short). The budget is calibrated in the same run so that one trial trains
for about ``--trial-s`` seconds on one thread. Placements, same trials:

- ``2 x 1``: two trials at a time, one CPU and one intra-op thread each (tuneall's default, --cpus-per-trial 1);
- ``1 x 2``: one trial at a time with both CPUs and two threads (--cpus-per-trial 2).

The baseline of the ratio is the ideal: the CPUs busy training for the whole wall time. What eats the rest is
broken down: Ray start-up and shut-down, per-trial overhead (process, imports, planning, evaluation: trial wall time
minus its training time), and idle CPUs (trials that do not divide the CPUs, scheduling gaps, the report).

    python benchmarks/search_efficiency.py [--quick] [--trial-s 30]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import _common as C  # noqa: E402  (puts the repository root on sys.path)

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from tuneall.data import load_dataset  # noqa: E402
from tuneall.models import param_count  # noqa: E402
from tuneall.planning.space import parse_space  # noqa: E402
from tuneall.training.member import TrainConfig, train_member  # noqa: E402

GOAL = 0.85
WIDTH, KS = 0.5, [1, 2, 3, 4, 5, 6]


def calibrate(trial_s: float) -> tuple[float, float]:
    """Budget (param-steps) for which one trial of cnn3 w=0.5 on digits trains ~trial_s seconds on one thread."""
    data = load_dataset("digits")
    torch.set_num_threads(1)
    cfg = TrainConfig()
    train_member("cnn3", WIDTH, None, data, 10, 0, cfg)  # warm-up
    r = train_member("cnn3", WIDTH, None, data, 150, 0, cfg)
    step_s = r.train_time_s / r.steps_done
    p = param_count("cnn3", WIDTH, None, 1, 10, 2)
    return float(round(p * trial_s / step_s, -4)), step_s


def run_search(budget: float, cpus_per_trial: int, storage: str, name: str, ks: list[int]) -> dict:
    import tuneall

    space = parse_space({"families": ["cnn3"], "width": [WIDTH], "k": ks}, name="bench")
    t0 = time.perf_counter()
    tuneall.search(budget=budget, dataset="digits", space=space, searcher="grid", seeds=1,
                   cpus_per_trial=cpus_per_trial, num_cpus=2, storage_path=storage, name=name, verbose=0)
    wall = time.perf_counter() - t0
    t = pd.read_csv(os.path.join(storage, name, "trials_summary.csv"))
    t = t[(t["status"] == "ok") & t["repeat_of"].isna()] if "repeat_of" in t else t[t["status"] == "ok"]
    cpus_held = 2
    train_cpu_s = float((t["train_time_s"] * cpus_per_trial).sum())
    trial_wall_cpu_s = float((t["wall_time_s"] * cpus_per_trial).sum())
    eff = train_cpu_s / (wall * cpus_held)
    return {"placement": f"{cpus_held // cpus_per_trial} x {cpus_per_trial}", "cpus_per_trial": cpus_per_trial,
            "trials": int(len(t)), "wall_s": wall, "train_s_sum": float(t["train_time_s"].sum()),
            "trial_wall_s_sum": float(t["wall_time_s"].sum()), "efficiency": eff,
            # shares of (wall x CPUs held): training, in-trial overhead, everything else (Ray, idle, report)
            "share_training": eff,
            "share_in_trial_overhead": (trial_wall_cpu_s - train_cpu_s) / (wall * cpus_held),
            "share_outside_trials": 1 - trial_wall_cpu_s / (wall * cpus_held),
            "member_steps_per_s": float((t["steps"] * t["k"]).sum() / wall)}


def ray_startup_s() -> float:
    import ray

    t = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, configure_logging=False)
    ray.shutdown()
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="trials of ~5 s (a smoke run)")
    p.add_argument("--trial-s", type=float, default=30.0, help="seconds of training per trial (default 30)")
    args = p.parse_args()
    trial_s = 5.0 if args.quick else args.trial_s
    t_start = time.perf_counter()
    out = C.header("search_efficiency", args.quick)
    budget, step_s = calibrate(trial_s)
    print(f"calibration: cnn3 w={WIDTH} on digits, {step_s * 1e3:.1f} ms/step on 1 thread -> C = {budget:.3g} "
          f"param-steps (~{trial_s:.0f} s of training per trial)", flush=True)
    out.update({"budget": budget, "step_s_1_thread": step_s, "trial_s_target": trial_s,
                "ray_start_stop_s": ray_startup_s()})
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for cpus in (1, 2):
            r = run_search(budget, cpus, tmp, f"p{cpus}", KS if cpus == 1 else KS[:3])
            runs.append(r)
            print(f"  placement {r['placement']}: {r['trials']} trials in {r['wall_s']:.1f} s, efficiency "
                  f"{r['efficiency']:.3f} (in-trial overhead {r['share_in_trial_overhead']:.3f}, outside trials "
                  f"{r['share_outside_trials']:.3f}), {r['member_steps_per_s']:.1f} member-steps/s", flush=True)
    out["runs"] = runs
    a, b = runs
    rows = [C.row(f"search efficiency, placement {r['placement']} (trials ~{trial_s:.0f} s)", r["efficiency"],
                  "ideal: every CPU training all the time", 1.0, "",
                  f">= {GOAL}" if r["cpus_per_trial"] == 1 else "", r["efficiency"] >= GOAL
                  if r["cpus_per_trial"] == 1 else None,
                  note=f"Ray start+stop {out['ray_start_stop_s']:.1f} s of {r['wall_s']:.0f} s")
            for r in runs]
    rows.append(C.row("search throughput 2 x 1 threads (member-steps/s)", a["member_steps_per_s"],
                      "1 x 2 threads", b["member_steps_per_s"], "steps/s"))
    out["rows"] = rows
    out["decision"] = ("one trial per core (2 x 1)" if a["member_steps_per_s"] >= b["member_steps_per_s"]
                       else "one trial with all cores (1 x 2)")
    out["elapsed_s"] = time.perf_counter() - t_start
    C.print_rows(rows)
    print(f"thread placement by measurement: {out['decision']}")
    print(f"wrote {C.write_result('search_efficiency' + ('_quick' if args.quick else ''), out)} in "
          f"{out['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
