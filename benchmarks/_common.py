"""Shared helpers of the benchmarks: machine description, the float32 matmul reference, timing, JSON output.

Numbers on a shared machine are noisy: every benchmark interleaves baseline and candidate (so a burst of load from
elsewhere hits both), repeats, and reports medians; the load average at the start is recorded with each result.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "results" / "benchmarks"
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4")))
    except OSError:
        pass
    return []


def machine() -> dict:
    import torch

    info = {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "omp_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")
                    if k in os.environ},
    }
    try:
        import ray

        info["ray"] = ray.__version__
    except ImportError:
        info["ray"] = None
    return info


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def median(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def matmul_gflops(threads: int | None = None, n: int = 2048, reps: int = 3, device: str = "cpu") -> float:
    """float32 n x n x n matmul rate in GFLOP/s (2 n^3 FLOPs per product): the best of ``reps`` after a warm-up.

    The best, not the median, because this is the reference "what this hardware can do" rate; the figures it divides
    are medians, so a ratio is, if anything, pessimistic.
    """
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        a @ b
        best = float("inf")
        for _ in range(reps):
            if device != "cpu":
                torch.cuda.synchronize()
            t = time.perf_counter()
            a @ b
            if device != "cpu":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        return 2 * n**3 / best / 1e9
    finally:
        torch.set_num_threads(before)


def write_result(name: str, payload: dict) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path


def header(name: str, quick: bool) -> dict:
    return {"benchmark": name, "quick": quick, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "load_average_at_start": load_average(), "machine": machine()}


def row(figure: str, value: float, baseline_name: str, baseline: float, unit: str = "", goal: str = "",
        met: bool | None = None, note: str = "") -> dict:
    """One line of the summary table: a figure next to its baseline and their ratio."""
    ratio = value / baseline if baseline and baseline == baseline else float("nan")
    return {"figure": figure, "value": value, "unit": unit, "baseline": baseline_name, "baseline_value": baseline,
            "ratio": ratio, "goal": goal, "met": met, "note": note}


def print_rows(rows: list[dict]) -> None:
    for r in rows:
        met = "" if r["met"] is None else ("  MET" if r["met"] else "  NOT MET")
        print(f"  {r['figure']:<58} {r['value']:>9.4g} {r['unit']:<8} vs {r['baseline']:<34} "
              f"{r['baseline_value']:>9.4g}  ratio {r['ratio']:6.3f}  {r['goal']}{met}", flush=True)


def parse_args(description: str):
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a smoke run (~1-2 minutes for everything)")
    return p.parse_args()
