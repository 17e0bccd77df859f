"""Seed 002: ensemble accuracy against total training and inference FLOPs, one curve per ensemble size k, for
arithmetic- and geometric-mean combination of the members' softmax outputs.

The budget is counted in FLOPs (forward + backward per step, measured on the real module), so every allocation of a
budget spends the same training FLOPs; the ensemble of k members costs k x one member's inference FLOPs. Writes the
sweep's results directory and ``findings.md``.

    python examples/seed002_flops.py                 # mnist1d, about 5-10 minutes on 2 cores
    python examples/seed002_flops.py --smoke-test    # seconds, on digits
    python examples/seed002_flops.py --cifar --data-dir DIR --gpus-per-trial 0.25   # Wide ResNet-16-k, as in the paper
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cell, graded, parser, preset, run, write_findings  # noqa: E402

SPACE = {"name": "seed002", "families": ["cnn3"], "lr": 0.05, "momentum": 0.9}
RULES = ("mean", "geometric")
SMOKE = dict(dataset="digits", budgets="6e8:2.4e9:2", seeds=1, min_steps=10, unit="flops", rules=RULES,
             space={**SPACE, "width": [0.25], "k": [1, 2], "batch_size": 32})
# mnist1d: one step of cnn3 at batch 128 costs 1.8e7 / 7.2e7 / 2.9e8 FLOPs at w = 0.25 / 0.5 / 1.
DEFAULT = dict(dataset="mnist1d", budgets="1e9:6e10:5", seeds=3, unit="flops", rules=RULES,
               space={**SPACE, "width": [0.25, 0.5, 1.0], "k": [1, 2, 3, 4], "batch_size": 128})
# The paper: Wide ResNet-16-k, k in {1, 2, 4, 8} (tuneall's wrn width), ensembles of up to 8.
CIFAR = dict(dataset="cifar10", budgets="1e15:1e17:5", seeds=3, unit="flops", rules=RULES, gpus_per_trial=0.5,
             space={**SPACE, "families": ["wrn"], "width": [1.0, 2.0, 4.0, 8.0], "depth": [16], "k": [1, 2, 4, 8],
                    "lr": 0.05, "batch_size": 128})


def findings(out: Path) -> tuple[list[str], list[dict]]:
    from tuneall.reporting.grading import effect_text

    cells = pd.read_csv(out / "cells.csv")
    s = pd.read_csv(out / "cells_summary.csv")
    opt = pd.read_csv(out / "optimal_k.csv")
    lines = ["## Optimal ensemble size per training-FLOPs budget", "",
             "Per budget: the best ensemble of 2-4 members minus the best single model (arithmetic mean), paired over "
             "seeds, graded.", "",
             "| budget (FLOPs) | rule | best k | width | accuracy | best single | best k=2-4 − best single | grade |",
             "|---|---|---|---|---|---|---|---|"]
    mean = s[s["rule"] == "mean"]
    per_budget = {}
    for c, at in mean.groupby("budget"):
        one, ens = at[at["k"] == 1], at[at["k"].between(2, 4)]
        if len(one) and len(ens):
            a, b = one.loc[one["mean"].idxmax()], ens.loc[ens["mean"].idxmax()]
            per_budget[c] = graded(f"the best ensemble of 2-4 (k={int(b['k'])}, w={b['width']:g}) beats the best "
                                   f"single model (w={a['width']:g}) at {c:.3g} training FLOPs", cells,
                                   [(1, cell(b)), (-1, cell(a))])
    for _, r in opt.sort_values(["budget", "rule"]).iterrows():
        v = per_budget.get(r["budget"]) if r["rule"] == "mean" else None
        lines.append(f"| {r['budget']:.3g} | {r['rule']} | {int(r['best_k'])} | {r['best_width']:g} | "
                     f"{r['mean']:.4f} ± {r['std']:.4f} | {r['best_single']:.4f} | "
                     + (f"{effect_text(v['effect'], v['se'])} | {v['verdict']} |" if v else " | |"))
    verdicts = []
    if per_budget:
        top = per_budget[max(per_budget)]
        verdicts.append({**top, "claim": "The optimal ensemble size is 2-4, at the largest budget: " + top["claim"]})
    # Geometric vs arithmetic mean on the same members (k > 1 only: for one member they are identical), averaged over
    # the ensemble cells within each repeat, then paired over seeds.
    ens = s[(s["k"] > 1) & (s["rule"] == "geometric")]
    terms = [t for _, r in ens.iterrows() for t in ((1 / len(ens), cell(r)), (-1 / len(ens), cell(r, rule="mean")))]
    if terms:
        verdicts.append(graded(f"The geometric mean of the members' softmax outputs is (slightly) more accurate than "
                               f"the arithmetic mean (mean over {len(ens)} ensemble cells)", cells, terms))
    piv = s[s["k"] > 1].pivot_table(index=["width", "k", "budget"], columns="rule", values="mean")
    diff = (piv["geometric"] - piv["mean"]) if {"geometric", "mean"} <= set(piv) else pd.Series(dtype=float)
    # Inference FLOPs at the largest budget: an ensemble above-left of a single model = more accurate for fewer FLOPs.
    top = mean[mean["budget"] == mean["budget"].max()]
    dominating = [(e, o) for _, e in top[top["k"] > 1].iterrows() for _, o in top[top["k"] == 1].iterrows()
                  if e["inference_flops"] <= o["inference_flops"] and e["mean"] > o["mean"]]
    ks = opt[opt["rule"] == "mean"]["best_k"]
    lines += ["", f"Optimal k (arithmetic mean) over the budgets: {', '.join(str(int(k)) for k in ks)} (seed 002 "
                  "reports 2-4 on CIFAR-10).",
              f"Geometric minus arithmetic mean, per ensemble cell: {100 * diff.mean():+.2f} pts on average "
              f"(geometric better in {(diff > 0).sum()}, worse in {(diff < 0).sum()} of {len(diff)}).",
              f"At the largest budget, {len(dominating)} (ensemble, single) pairs have the ensemble more accurate on "
              "mean with no more inference FLOPs"]
    for e, o in dominating[:3]:
        v = graded("", cells, [(1, cell(e)), (-1, cell(o))])
        lines[-1] += (f"; k={int(e['k'])} w={e['width']:g} ({e['mean']:.4f}, {e['inference_flops']:.3g} FLOPs) vs "
                      f"single w={o['width']:g} ({o['mean']:.4f}, {o['inference_flops']:.3g} FLOPs): "
                      f"{effect_text(v['effect'], v['se'])}, {v['verdict']}")
    lines[-1] += "."
    return lines, verdicts


def main(argv=None) -> Path:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    conf = preset(args, SMOKE, DEFAULT, CIFAR)
    from tuneall.planning.space import parse_space

    conf["space"] = parse_space(conf["space"])
    out = run(args, "seed002-flops", conf)
    write_findings(out, "Seed 002: accuracy vs FLOPs per ensemble size", *findings(out))
    return out


if __name__ == "__main__":
    main()
