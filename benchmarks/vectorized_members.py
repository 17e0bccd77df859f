"""Vectorised members: k members trained together (``--members vectorized``: one ``vmap``-ed network) against the
same k members trained one after another (``--members sequential``, the baseline), and what ``--members auto``
picks, in one run.

Both train the same seeds on the same data through tuneall's own code (``train_members_vectorized`` and
``train_member``); interleaved rounds, medians. Shapes: CIFAR-sized synthetic images (3x32x32, batch 128) and digits
(1x8x8). On a GPU (when one is lent) the same table is measured on the device, data resident there.

    python benchmarks/vectorized_members.py [--quick]
"""

from __future__ import annotations

import time

import _common as C  # noqa: E402  (puts the repository root on sys.path)

import torch  # noqa: E402

from tuneall.data import load_dataset, make_synthetic  # noqa: E402
from tuneall.training.member import TrainConfig, train_member  # noqa: E402
from tuneall.training.vectorized import choose_method, train_members_vectorized  # noqa: E402

GOAL_CPU, GOAL_GPU = 1.0, 4.0  # vectorised >= 1.0x sequential on CPU; >= 4x for k=8, w=0.5 on a GPU


def one(data, width: float, k: int, steps: int, rounds: int, device: str) -> dict:
    cfg = TrainConfig(batch_size=128, device=device)
    seeds = tuple(range(k))

    def seq():
        return sum(train_member("cnn3", width, None, data, steps, s, cfg).train_time_s for s in seeds)

    def vec():
        return sum(r.train_time_s for r in train_members_vectorized("cnn3", width, None, data, steps, seeds, cfg))

    train_member("cnn3", width, None, data, 2, 0, cfg)  # warm-up: kernel selection, allocator
    train_members_vectorized("cnn3", width, None, data, 2, seeds, cfg)
    ts, tv = [], []
    for _ in range(rounds):
        ts.append(seq())
        tv.append(vec())
    t_seq, t_vec = C.median(ts), C.median(tv)
    auto = choose_method("cnn3", width, None, data, k, cfg)
    # what auto trains with; its probe is paid once per architecture and process, reported beside it
    t_auto = t_vec if auto["method"] == "vectorized" else t_seq
    return {"width": width, "k": k, "steps": steps, "device": device, "seq_s": ts, "vec_s": tv,
            "seq_s_median": t_seq, "vec_s_median": t_vec, "speedup": t_seq / t_vec, "auto_method": auto["method"],
            "auto_probe_s": auto["probe_s"], "auto_speedup": t_seq / t_auto}


def main():
    args = C.parse_args(__doc__.splitlines()[0])
    t_start = time.perf_counter()
    out = C.header("vectorized_members", args.quick)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    torch.set_num_threads(1)  # a trial's default: one CPU, one thread (tuneall --cpus-per-trial 1)
    rows, recs = [], []
    for device in devices:
        cifar = make_synthetic((3, 32, 32), 10, n_train=4096, n_test=256, seed=0)  # moved to the device per run
        digits = load_dataset("digits")
        cases = [("cifar-shaped", cifar, 0.5, 4), ("cifar-shaped", cifar, 0.5, 8), ("digits", digits, 0.5, 4),
                 ("digits", digits, 0.25, 8)]
        if args.quick:
            cases = cases[:1] + cases[2:3]
        for label, data, w, k in cases:
            steps = (40 if label == "digits" else 6) if device == "cpu" else 50
            r = one(data, w, k, steps if not args.quick else max(2, steps // 3), 2 if args.quick else 3, device)
            r["data"] = label
            recs.append(r)
            print(f"  {device} {label} w={w} k={k}: sequential {r['seq_s_median']:.2f} s, vectorised "
                  f"{r['vec_s_median']:.2f} s ({r['speedup']:.2f}x); auto picks {r['auto_method']} "
                  f"({r['auto_speedup']:.2f}x, after a {r['auto_probe_s']:.2f} s probe)", flush=True)
            gpu_goal = device == "cuda" and k == 8 and w == 0.5
            goal = f">= {GOAL_GPU}" if gpu_goal else (f">= {GOAL_CPU} (auto)" if device == "cpu" else "")
            rows.append(C.row(f"{device} {label} w={w:g} k={k}: vectorised [ratio = speedup]", r["vec_s_median"],
                              "sequential members", r["seq_s_median"], "s"))
            rows[-1]["ratio"] = r["speedup"]
            if gpu_goal:
                rows[-1].update(goal=goal, met=r["speedup"] >= GOAL_GPU)
            if device == "cpu":
                rows.append(C.row(f"cpu {label} w={w:g} k={k}: --members auto [ratio = speedup]",
                                  r["seq_s_median"] / r["auto_speedup"], "sequential members", r["seq_s_median"],
                                  "s", goal, r["auto_speedup"] >= GOAL_CPU,
                                  note=f"auto picked {r['auto_method']} after a {r['auto_probe_s']:.2f} s probe"))
                rows[-1]["ratio"] = r["auto_speedup"]
    out["cases"], out["rows"] = recs, rows
    out["elapsed_s"] = time.perf_counter() - t_start
    C.print_rows(rows)
    print(f"wrote {C.write_result('vectorized_members', out)} in {out['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
