"""Does torch.compile pay off within a trial? Whole members of cnn3 (CIFAR-shaped, batch 128, 2 threads) trained
eager and with ``torch.compile(model)``, each configuration in a fresh process, compile caches cold (a fresh
TORCHINDUCTOR_CACHE_DIR) and warm (the same directory again), interleaved over rounds.

Per process: two members one after another (a trial's k members are new modules of the same architecture: does the
second one compile again?), each ``--steps`` steps. Reported: each member's wall time, and the member length at which
compiling breaks even against eager. Writes ``results/benchmarks/compile_member.json``.

    python benchmarks/compile_member.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import _common as C  # noqa: E402  (puts the repository root on sys.path)

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import torch
from torch.nn import functional as F
from tuneall.models import create_model
torch.set_num_threads(2)
mode, steps, width = {mode!r}, {steps}, {width}
x = torch.randn(128, 3, 32, 32).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (128,))
out = []
for member in range(2):
    t0 = time.perf_counter()
    torch.manual_seed(member)
    model = create_model("cnn3", width, None, 3, 10, 2).to(memory_format=torch.channels_last)
    fwd = torch.compile(model) if mode != "eager" else model
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    first = None
    for i in range(steps):
        loss = F.cross_entropy(fwd(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i == 0:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    out.append({{"member": member, "total_s": total, "first_step_s": first,
                 "steady_step_s": (total - first) / max(1, steps - 1)}})
print(json.dumps(out))
"""


def run(mode: str, steps: int, width: float, cache_dir: str) -> list[dict]:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache_dir}
    code = CHILD.format(root=str(C.ROOT), mode=mode, steps=steps, width=width)
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.strip().splitlines()[-1])
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    args = C.parse_args(__doc__.splitlines()[0])
    rec = C.header("compile_member", args.quick)
    t0 = time.perf_counter()
    steps, rounds, width = (40, 1, 1.0) if args.quick else (200, 2, 1.0)
    runs = {"eager": [], "compile_cold": [], "compile_warm": []}
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as cache:
            for mode in ("eager", "compile_cold", "compile_warm"):  # cold, then warm in the same cache directory
                res = run(mode, steps, width, cache)
                runs[mode].append(res)
                members = ", ".join("%.1f s" % m["total_s"] for m in res)
                print(f"round {r} {mode}: members {members} (first step {res[0]['first_step_s']:.1f} s, steady "
                      f"{res[0]['steady_step_s'] * 1e3:.0f} ms)", flush=True)

    def med(mode, member, key):
        return C.median([run_[member][key] for run_ in runs[mode]])

    eager_step = C.median([med("eager", m, "steady_step_s") for m in (0, 1)])
    rows, summary = [], {}
    for mode in ("compile_cold", "compile_warm"):
        step = C.median([med(mode, m, "steady_step_s") for m in (0, 1)])
        overhead = med(mode, 0, "total_s") - step * steps  # first member: compile + one-off costs
        second = med(mode, 1, "total_s") - step * steps  # second member: recompiles or not
        gain = eager_step - step
        breakeven = overhead / gain if gain > 0 else float("inf")
        summary[mode] = {"steady_step_s": step, "first_member_overhead_s": overhead,
                         "second_member_overhead_s": second, "break_even_steps": breakeven}
        rows.append(C.row(f"torch.compile steady step, cnn3 w={width:g}, 2 threads ({mode}) [ratio = speedup]", step,
                          "eager step", eager_step, "s",
                          note=f"first member +{overhead:.1f} s, second +{second:.1f} s; break-even "
                               f"{breakeven:.0f} steps of one member"))
        rows[-1]["ratio"] = eager_step / step
        rows.append(C.row(f"member of {steps} steps, {mode} [ratio = speedup]", med(mode, 0, "total_s"),
                          "eager member", med("eager", 0, "total_s"), "s"))
        rows[-1]["ratio"] = med("eager", 0, "total_s") / med(mode, 0, "total_s")
    rec.update({"steps_per_member": steps, "width": width, "runs": runs, "eager_steady_step_s": eager_step,
                "summary": summary, "rows": rows, "elapsed_s": time.perf_counter() - t0})
    C.print_rows(rows)
    print(f"wrote {C.write_result('compile_member', rec)}")


if __name__ == "__main__":
    main()
