"""Step efficiency: training FLOP/s of one member divided by this machine's float32 matmul rate, per width and thread
count, for tuneall's training path and for a plain PyTorch tutorial loop (the baseline).

cnn3 on CIFAR-shaped inputs (3x32x32, synthetic data: the speed does not depend on the pixels), batch 128. FLOPs per
step are counted with FlopCounterMode on the real module (tuneall.models.flops), as in the issue. Every round
interleaves: matmul rate -> tutorial loop -> tuneall NCHW -> tuneall channels_last (the default); medians over rounds.

Also measured here, each against its baseline: torch.compile (compile time and steady step time vs eager, and the
trial length at which compiling pays), bfloat16 autocast (what --amp does on CPU) vs float32, inference-mode batched evaluation (predict_proba) vs a tutorial no_grad
DataLoader evaluation, and OMP_WAIT_POLICY=PASSIVE vs the default (spinning) for a 2-thread trial on a shared machine.

    python benchmarks/step_efficiency.py [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import _common as C  # noqa: E402  (puts the repository root on sys.path)

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tuneall.data import make_synthetic  # noqa: E402
from tuneall.models import create_model  # noqa: E402
from tuneall.models.flops import train_flops_per_step  # noqa: E402
from tuneall.models import Architecture  # noqa: E402
from tuneall.training.member import TrainConfig, predict_log_proba, train_member  # noqa: E402

SHAPE, CLASSES, BATCH = (3, 32, 32), 10, 128
GOAL = 0.6  # step efficiency goal for cnn3 at w >= 1


def tutorial_steps(width: float, data, steps: int, seed: int = 0) -> float:
    """Seconds per step of the PyTorch-tutorial training loop (DataLoader over a TensorDataset, NCHW)."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    model = create_model("cnn3", width, None, SHAPE[0], CLASSES, 2)
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=BATCH, shuffle=True, drop_last=True)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    done, t0 = 0, time.perf_counter()
    while done < steps:
        for inputs, labels in loader:
            optimizer.zero_grad()
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    return (time.perf_counter() - t0) / steps


def tuneall_steps(width: float, data, steps: int, channels_last: bool, seed: int = 0) -> float:
    """Seconds per step of tuneall's own train_member (train_time_s excludes evaluation, as in the trials table)."""
    cfg = TrainConfig(lr=0.05, batch_size=BATCH, channels_last=channels_last)
    r = train_member("cnn3", width, None, data, steps, seed, cfg)
    return r.train_time_s / r.steps_done


def step_table(widths, threads_list, rounds: int, steps_for) -> list[dict]:
    data = make_synthetic(SHAPE, CLASSES, n_train=4096, n_test=512, seed=0)
    out = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        for w in widths:
            flops = train_flops_per_step(Architecture("cnn3", w, None, SHAPE, CLASSES), BATCH)
            steps = steps_for(w)
            tuneall_steps(w, data, 2, True)  # warm-up (first-call kernel selection, allocator)
            mm, tut, nchw, cl = [], [], [], []
            for _ in range(rounds):
                mm.append(C.matmul_gflops(threads))
                tut.append(tutorial_steps(w, data, steps))
                nchw.append(tuneall_steps(w, data, steps, False))
                cl.append(tuneall_steps(w, data, steps, True))
            rec = {"threads": threads, "width": w, "train_flops_per_step": flops, "steps_per_round": steps,
                   "matmul_gflops": mm, "tutorial_s": tut, "tuneall_nchw_s": nchw, "tuneall_channels_last_s": cl}
            m = C.median(mm)
            for key in ("tutorial", "tuneall_nchw", "tuneall_channels_last"):
                t = C.median(rec[f"{key}_s"])
                rec[f"{key}_gflops"] = flops / t / 1e9
                rec[f"{key}_efficiency"] = flops / t / 1e9 / m
            rec["matmul_gflops_median"] = m
            out.append(rec)
            print(f"  threads={threads} w={w}: matmul {m:.1f} GFLOP/s; tutorial {rec['tutorial_gflops']:.1f}, "
                  f"tuneall NCHW {rec['tuneall_nchw_gflops']:.1f}, tuneall channels_last "
                  f"{rec['tuneall_channels_last_gflops']:.1f} GFLOP/s (efficiency "
                  f"{rec['tuneall_channels_last_efficiency']:.2f})", flush=True)
    return out


def compile_check(width: float = 1.0, steps: int = 8) -> dict:
    """torch.compile of tuneall's step (channels_last, 1 thread): compile time, steady step vs eager, break-even."""
    torch.set_num_threads(1)
    data = make_synthetic(SHAPE, CLASSES, n_train=2048, n_test=64, seed=0)

    def make(compiled: bool):
        torch.manual_seed(0)
        model = create_model("cnn3", width, None, SHAPE[0], CLASSES, 2).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return torch.compile(step) if compiled else step

    gen = torch.Generator().manual_seed(0)

    def batch():
        idx = torch.randint(0, len(data.x_train), (BATCH,), generator=gen)
        return data.x_train[idx].contiguous(memory_format=torch.channels_last), data.y_train[idx]

    eager, comp = make(False), make(True)
    eager(*batch())
    t = time.perf_counter()
    comp(*batch())
    first = time.perf_counter() - t
    te, tc = [], []
    for _ in range(steps):  # interleaved
        for fn, ts in ((eager, te), (comp, tc)):
            b = batch()
            t = time.perf_counter()
            fn(*b)
            ts.append(time.perf_counter() - t)
    t_e, t_c = C.median(te), C.median(tc)
    compile_s = first - t_c
    gain = t_e - t_c
    # A typical digits search trial (C = 3e7 param-steps, cnn3 w=1, P = 94k): ~317 steps per member, and every member
    # is a new module, so each would compile again (dynamo guards on the module).
    typical_steps = 317
    return {"width": width, "threads": 1, "compile_s": compile_s, "eager_step_s": t_e, "compiled_step_s": t_c,
            "speedup": t_e / t_c, "break_even_steps": compile_s / gain if gain > 0 else float("inf"),
            "typical_member_steps_digits_3e7": typical_steps,
            "pays_off": gain > 0 and compile_s / gain < typical_steps}


def eval_check(width: float = 1.0, n_test: int = 4096, rounds: int = 3) -> dict:
    """predict_proba (inference_mode, batches of 2048) vs the tutorial evaluation (no_grad, DataLoader of 128)."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(1)
    data = make_synthetic(SHAPE, CLASSES, n_train=256, n_test=n_test, seed=0)
    torch.manual_seed(0)
    model = create_model("cnn3", width, None, SHAPE[0], CLASSES, 2)

    def tutorial():
        model.eval()
        outs = []
        with torch.no_grad():
            for x, _ in DataLoader(TensorDataset(data.x_test, data.y_test), batch_size=BATCH):
                outs.append(torch.softmax(model(x), -1))
        model.train()
        return torch.cat(outs)

    cl_model = create_model("cnn3", width, None, SHAPE[0], CLASSES, 2).to(memory_format=torch.channels_last)
    cl_model.load_state_dict(model.state_dict())
    tt, tp = [], []
    for _ in range(rounds):
        for fn, ts in ((tutorial, tt), (lambda: predict_log_proba(cl_model, data.x_test, 2048), tp)):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return {"width": width, "n_test": n_test, "tutorial_s": C.median(tt), "predict_proba_s": C.median(tp),
            "tutorial_images_per_s": n_test / C.median(tt), "predict_proba_images_per_s": n_test / C.median(tp)}


_WAIT_CHILD = """
import sys, time, torch
sys.path.insert(0, {root!r})
from tuneall.data import make_synthetic
from tuneall.training.member import TrainConfig, train_member
torch.set_num_threads(2)
data = make_synthetic((3, 32, 32), 10, n_train=2048, n_test=64, seed=0)
train_member("cnn3", 1.0, None, data, 2, 0, TrainConfig())
r = train_member("cnn3", 1.0, None, data, {steps}, 0, TrainConfig())
print(r.train_time_s / r.steps_done)
"""


def wait_policy_check(rounds: int = 2, steps: int = 6) -> dict:
    """2-thread step time with OMP_WAIT_POLICY unset (libgomp spins) vs PASSIVE, interleaved, fresh processes."""
    code = _WAIT_CHILD.format(root=str(C.ROOT), steps=steps)
    res = {"default": [], "PASSIVE": []}
    for _ in range(rounds):
        for policy in ("default", "PASSIVE"):
            env = dict(os.environ)
            env.pop("OMP_WAIT_POLICY", None)
            if policy != "default":
                env["OMP_WAIT_POLICY"] = policy
            p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
            res[policy].append(float(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else float("nan"))
    return {"threads": 2, "width": 1.0, "step_s": res, "default_s": C.median(res["default"]),
            "passive_s": C.median(res["PASSIVE"])}


def amp_check(widths, steps: int = 6, threads: int = 2) -> list[dict]:
    """bfloat16 autocast (what ``--amp`` does on CPU) vs float32, per width, interleaved step times."""
    torch.set_num_threads(threads)
    x = torch.randn(BATCH, *SHAPE).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (BATCH,))
    out = []
    for w in widths:
        runs = {}
        for amp in (False, True):
            torch.manual_seed(0)
            model = create_model("cnn3", w, None, SHAPE[0], CLASSES, 2).to(memory_format=torch.channels_last)
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

            def step(model=model, opt=opt, amp=amp):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            step()
            runs[amp] = (step, [])
        for _ in range(steps):
            for step, ts in runs.values():
                t = time.perf_counter()
                step()
                ts.append(time.perf_counter() - t)
        out.append({"width": w, "threads": threads, "fp32_step_s": C.median(runs[False][1]),
                    "bf16_step_s": C.median(runs[True][1])})
    return out


def main():
    args = C.parse_args(__doc__.splitlines()[0])
    t_start = time.perf_counter()
    out = C.header("step_efficiency", args.quick)
    widths = (1.0,) if args.quick else (0.5, 1.0, 2.0)
    rounds = 2 if args.quick else 3
    steps_for = (lambda w: 3) if args.quick else (lambda w: {0.5: 10, 1.0: 6, 2.0: 4}[w])
    print("step efficiency (cnn3, 3x32x32, batch 128):", flush=True)
    out["steps"] = step_table(widths, (1, 2), rounds, steps_for)
    out["eval"] = eval_check(rounds=2 if args.quick else 3)
    print(f"  evaluation: predict_proba {out['eval']['predict_proba_images_per_s']:.0f} img/s vs tutorial "
          f"{out['eval']['tutorial_images_per_s']:.0f} img/s", flush=True)
    if not args.quick:
        out["compile"] = compile_check()
        c = out["compile"]
        print(f"  torch.compile: {c['compile_s']:.1f} s to compile, step {c['speedup']:.2f}x eager, pays off after "
              f"{c['break_even_steps']:.0f} steps (typical member: {c['typical_member_steps_digits_3e7']})",
              flush=True)
        out["amp"] = amp_check(widths)
        print("  --amp on CPU (bfloat16 autocast): " + ", ".join(
            f"w={a['width']:g} {a['fp32_step_s'] / a['bf16_step_s']:.2f}x fp32" for a in out["amp"]), flush=True)
        out["wait_policy"] = wait_policy_check()
        wp = out["wait_policy"]
        print(f"  2 threads: OMP_WAIT_POLICY=PASSIVE {wp['passive_s'] * 1e3:.0f} ms/step vs default "
              f"{wp['default_s'] * 1e3:.0f} ms/step", flush=True)

    rows = []
    for rec in out["steps"]:
        w, th = rec["width"], rec["threads"]
        eff = rec["tuneall_channels_last_efficiency"]
        goal = f">= {GOAL} (w >= 1)" if w >= 1 else ""
        rows.append(C.row(f"cnn3 w={w:g} step GFLOP/s, {th} thread(s) [efficiency]", rec["tuneall_channels_last_gflops"],
                          f"float32 matmul, {th} thread(s)", rec["matmul_gflops_median"], "GFLOP/s", goal,
                          (eff >= GOAL) if w >= 1 else None))
        rows.append(C.row(f"cnn3 w={w:g} step GFLOP/s, {th} thread(s) [vs tutorial loop]",
                          rec["tuneall_channels_last_gflops"], "tutorial loop (DataLoader, NCHW)",
                          rec["tutorial_gflops"], "GFLOP/s"))
    e = out["eval"]
    rows.append(C.row("evaluation images/s (predict_proba, inference_mode)", e["predict_proba_images_per_s"],
                      "tutorial eval (no_grad, DataLoader 128)", e["tutorial_images_per_s"], "img/s"))
    if "compile" in out:
        c = out["compile"]
        rows.append(C.row("torch.compile step time (w=1, 1 thread) [ratio = speedup]", c["compiled_step_s"],
                          "eager channels_last step", c["eager_step_s"], "s",
                          note=f"compile {c['compile_s']:.0f} s, break-even {c['break_even_steps']:.0f} steps"))
        rows[-1]["ratio"] = c["speedup"]
    for a in out.get("amp", []):
        rows.append(C.row(f"bf16 autocast step time (--amp), w={a['width']:g}, {a['threads']} threads "
                          "[ratio = speedup]", a["bf16_step_s"], "float32 step", a["fp32_step_s"], "s"))
        rows[-1]["ratio"] = a["fp32_step_s"] / a["bf16_step_s"]
    if "wait_policy" in out:
        wp = out["wait_policy"]
        rows.append(C.row("2-thread step time, OMP_WAIT_POLICY=PASSIVE [ratio = speedup]", wp["passive_s"],
                          "default wait policy (spinning)", wp["default_s"], "s"))
        rows[-1]["ratio"] = wp["default_s"] / wp["passive_s"]
    out["rows"] = rows
    out["elapsed_s"] = time.perf_counter() - t_start
    C.print_rows(rows)
    print(f"wrote {C.write_result('step_efficiency', out)} in {out['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
