"""The GPU check, prepared for a lent GPU (under 8 minutes on one): vectorised members k = 8 against the same members
trained one after another, mixed precision (``--amp``) against full precision, and fractional GPUs per trial
(``--gpus-per-trial 0.25``: four trials share the device) against one trial per GPU, each baseline measured in the
same run. Writes ``results/benchmarks/gpu_check.json``. Without a CUDA device it says so and writes nothing.

    bash benchmarks/gpu_check.sh          # what the device tool runs
    python benchmarks/gpu_check.py --quick
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import _common as C  # noqa: E402  (puts the repository root on sys.path)

import torch  # noqa: E402

from tuneall.core.config import TrainConfig  # noqa: E402
from tuneall.data import make_synthetic  # noqa: E402
from tuneall.training.member import train_member  # noqa: E402
from tuneall.training.vectorized import train_members_vectorized  # noqa: E402


def members(data, k: int, steps: int, amp: bool, rounds: int) -> dict:
    """Sequential vs vectorised k members of cnn3 w=0.5 on CIFAR-sized synthetic images, on the GPU."""
    cfg = TrainConfig(batch_size=128, device="cuda")
    seeds = tuple(range(k))

    def seq():
        torch.cuda.synchronize()
        t = time.perf_counter()
        for s in seeds:
            train_member("cnn3", 0.5, None, data, steps, s, cfg)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    def vec():
        torch.cuda.synchronize()
        t = time.perf_counter()
        train_members_vectorized("cnn3", 0.5, None, data, steps, seeds, cfg, amp=amp)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    seq(), vec()  # warm-up: kernel selection, allocator
    ts, tv = [], []
    for _ in range(rounds):
        ts.append(seq())
        tv.append(vec())
    return {"k": k, "steps": steps, "amp": amp, "seq_s": C.median(ts), "vec_s": C.median(tv),
            "speedup": C.median(ts) / C.median(tv)}


def search_wall(gpus_per_trial: float, quick: bool) -> float:
    """Wall seconds of one small grid search (synthetic data, 4 allocations) at ``gpus_per_trial``."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "tuneall.cli", "search", "--dataset", "synthetic", "--budget",
                "3e8" if quick else "1e9", "--family", "cnn3", "--widths", "0.5,1", "--depths", "1", "--k", "1,2",
                "--searcher", "grid", "--seeds", "1", "--gpus-per-trial", str(gpus_per_trial), "--cpus-per-trial",
                "1", "--storage-path", tmp, "--name", "g", "--verbose", "0", "-y"]
        t = time.perf_counter()
        subprocess.run(argv, check=True, cwd=C.ROOT, timeout=240)
        return time.perf_counter() - t


def main():
    args = C.parse_args(__doc__.splitlines()[0])
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured (the README says GPU figures are unmeasured)")
        return 0
    out = C.header("gpu_check", args.quick)
    out["device_name"] = torch.cuda.get_device_name(0)
    data = make_synthetic((3, 32, 32), 10, n_train=8192, n_test=512, seed=0)
    steps, rounds = (100, 2) if args.quick else (300, 3)
    full = members(data, 8, steps, amp=False, rounds=rounds)
    half = members(data, 8, steps, amp=True, rounds=rounds)
    one_gpu, quarter = search_wall(1.0, args.quick), search_wall(0.25, args.quick)
    rows = [C.row("vectorised k=8 (cnn3 w=0.5)", full["vec_s"], "sequential k=8", full["seq_s"], "s", ">= 4x",
                  full["speedup"] >= 4),
            C.row("vectorised k=8 with --amp", half["vec_s"], "vectorised k=8 fp32", full["vec_s"], "s"),
            C.row("grid search, --gpus-per-trial 0.25", quarter, "--gpus-per-trial 1", one_gpu, "s")]
    C.print_rows(rows)
    out.update(members=[full, half], search_wall_s={"1": one_gpu, "0.25": quarter}, rows=rows)
    print(f"wrote {C.write_result('gpu_check', out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
