"""Where a cnn3 training step's time goes: torch.profiler self-CPU time per operator class, and the FLOP rate of the
convolutions alone, against this machine's float32 matmul rate measured in the same run.

Step efficiency (benchmarks/step_efficiency.py) divides all counted FLOPs (convolutions and the linear head: what
FlopCounterMode counts) by the whole step time. This script splits the step so the gap can be attributed: if the
convolutions alone run near the matmul rate, what is missing is time in operators that count no FLOPs
(BatchNorm, ReLU, max-pooling, the optimiser: memory-bound passes over the activations).

    python benchmarks/step_profile.py [--quick]
"""

from __future__ import annotations

import time

import _common as C  # noqa: E402  (puts the repository root on sys.path)

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from tuneall.models import create_model  # noqa: E402
from tuneall.models.flops import train_flops_per_step  # noqa: E402
from tuneall.models import Architecture  # noqa: E402

SHAPE, CLASSES, BATCH = (3, 32, 32), 10, 128
# Operator classes by ATen name (self time, so nested calls are not counted twice).
CLASSES_OF_OPS = [
    ("convolution", ("conv", "mkldnn_convolution", "convolution_backward")),
    ("batchnorm", ("batch_norm",)),
    ("relu", ("relu", "threshold")),
    ("max_pool", ("max_pool",)),
    ("linear/loss", ("addmm", "mm", "cross_entropy", "log_softmax", "nll_loss", "mean", "avg_pool",
                     "adaptive_avg_pool")),
    ("optimizer", ("sgd", "_foreach", "add_", "mul_", "lerp")),
]


def op_class(name: str) -> str:
    n = name.lower()
    for cls, keys in CLASSES_OF_OPS:
        if any(k in n for k in keys):
            return cls
    return "other (copies, autograd bookkeeping)"


def conv_flops_per_step(width: float) -> float:
    """Training FLOPs of the convolutions alone (the full count less the linear head's)."""
    total = train_flops_per_step(Architecture("cnn3", width, None, SHAPE, CLASSES), BATCH)
    model = create_model("cnn3", width, None, SHAPE[0], CLASSES, 2)
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    return total - 3 * 2 * BATCH * head.in_features * head.out_features  # forward + 2 backward matmuls


def profile_step(width: float, threads: int, steps: int) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model("cnn3", width, None, SHAPE[0], CLASSES, 2).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(BATCH, *SHAPE).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (BATCH,))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    wall = (time.perf_counter() - t0) / steps
    by_class: dict[str, float] = {}
    for ev in prof.key_averages():
        by_class[op_class(ev.key)] = by_class.get(op_class(ev.key), 0.0) + ev.self_cpu_time_total / 1e6 / steps
    total = sum(by_class.values())
    mm = C.matmul_gflops(threads)
    flops = train_flops_per_step(Architecture("cnn3", width, None, SHAPE, CLASSES), BATCH)
    conv_gflops = conv_flops_per_step(width) / by_class.get("convolution", float("nan")) / 1e9
    return {"width": width, "threads": threads, "step_s_profiled": wall, "self_cpu_s_per_step": total,
            "share": {k: v / total for k, v in sorted(by_class.items(), key=lambda kv: -kv[1])},
            "matmul_gflops": mm, "step_gflops": flops / wall / 1e9, "step_efficiency": flops / wall / 1e9 / mm,
            "conv_gflops": conv_gflops, "conv_efficiency": conv_gflops / mm}


def main():
    args = C.parse_args(__doc__.splitlines()[0])
    rec = C.header("step_profile", args.quick)
    t0 = time.perf_counter()
    widths, steps = ([1.0], 3) if args.quick else ([0.5, 1.0, 2.0], 6)
    rows, profiles = [], []
    for threads in (1, 2):
        for w in widths:
            r = profile_step(w, threads, steps)
            profiles.append(r)
            share = ", ".join(f"{k} {v:.0%}" for k, v in r["share"].items())
            print(f"threads={threads} w={w}: step {r['step_gflops']:.0f} GFLOP/s ({r['step_efficiency']:.2f} of "
                  f"matmul {r['matmul_gflops']:.0f}); convolutions alone {r['conv_gflops']:.0f} GFLOP/s "
                  f"({r['conv_efficiency']:.2f}); time: {share}", flush=True)
            rows.append(C.row(f"convolution FLOP/s, cnn3 w={w}, {threads} thread(s)", r["conv_gflops"],
                              "float32 matmul", r["matmul_gflops"], "GFLOP/s"))
            rows.append(C.row(f"share of step time outside convolutions, w={w}, {threads} thread(s)",
                              1 - r["share"].get("convolution", 0.0), "whole step", 1.0,
                              note="; ".join(f"{k} {v:.0%}" for k, v in r["share"].items() if k != "convolution")))
    rec["profiles"], rec["rows"] = profiles, rows
    rec["elapsed_s"] = time.perf_counter() - t0
    C.print_rows(rows)
    print(f"wrote {C.write_result('step_profile', rec)}")


if __name__ == "__main__":
    main()
