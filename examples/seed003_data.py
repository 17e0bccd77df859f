"""Seed 003: compute-data trade-offs. The fraction of the training split is an allocation axis next to width and k;
for each budget, which fraction wins, and does the best fraction grow with the budget (compute-limited at small C,
data-limited at large C)?

A data fraction is a seeded subset, independent of the steps, so anytime reuse stays exact here too; each seed draws
its own subset (``subset_per_seed``, the sweep's default), so the spread over seeds includes the choice of subset.
Writes the sweep's results directory and ``findings.md``.

    python examples/seed003_data.py                 # mnist1d, about 5-10 minutes on 2 cores
    python examples/seed003_data.py --smoke-test    # seconds, on digits
    python examples/seed003_data.py --fixed-subset --name seed003-data-mnist1d-fixed-subset   # one subset for all seeds
    python examples/seed003_data.py --cifar --data-dir DIR --gpus-per-trial 0.25
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cell, graded, parser, preset, run, write_findings  # noqa: E402

SPACE = {"name": "seed003", "families": ["cnn3"], "lr": 0.05, "momentum": 0.9}
SMOKE = dict(dataset="digits", budgets="2e5:8e5:2", seeds=1, min_steps=10,
             space={**SPACE, "width": [0.25], "k": [1], "data_fraction": [0.25, 1.0], "batch_size": 32})
# mnist1d has 4000 training signals (31 steps per epoch at batch 128); 0.1 of it is 3 steps per epoch.
DEFAULT = dict(dataset="mnist1d", budgets="5e5:1.6e7:5", seeds=3,
               space={**SPACE, "width": [0.5, 1.0], "k": [1, 2], "data_fraction": [0.1, 0.25, 0.5, 1.0],
                      "batch_size": 128})
CIFAR = dict(dataset="cifar10", budgets="1e8:3e10:6", seeds=3, gpus_per_trial=0.25,
             space={**SPACE, "width": [0.5, 1.0, 2.0], "k": [1, 2, 4], "data_fraction": [0.1, 0.25, 0.5, 1.0],
                    "batch_size": 128})


def _subset_note(out: Path) -> str:
    import json

    conf = json.loads((out / "sweep.json").read_text())["config"]
    if conf.get("subset_per_seed", False):
        return ("Subsets: each seed draws its own data subset (repeat r's subset is seeded by its first member's "
                "seed; within a repeat the fractions are nested), so the standard errors include the choice of "
                "subset.")
    return ("Subsets: one fixed subset per fraction (fraction seed 0) for every seed, so the standard errors leave "
            "out the choice of subset.")


def findings(out: Path) -> tuple[list[str], list[dict]]:
    from tuneall.reporting.grading import combined

    cells = pd.read_csv(out / "cells.csv")
    t = pd.read_csv(out / "data_fraction.csv")
    lines = [_subset_note(out), "", "## Best accuracy per (budget, data fraction)", "",
             "| budget | " + " | ".join(f"fraction {f:g}" for f in sorted(t["data_fraction"].unique())) + " | best |",
             "|---|" + "---|" * (t["data_fraction"].nunique() + 1)]
    best = {}
    for c, g in t.groupby("budget"):
        g = g.set_index("data_fraction").sort_index()
        best[c] = g["mean"].idxmax()
        lines.append(f"| {c:.3g} | " + " | ".join(f"{r['mean']:.4f} ± {r['std']:.4f} (w={r['width']:g}, "
                                                   f"k={int(r['k'])}, {r['epochs']:.0f} ep)" for _, r in g.iterrows())
                     + f" | {best[c]:g} |")
    budgets = sorted(best)

    def full_vs_subset(c):
        """(full-data cell, best smaller-fraction cell) at budget c."""
        g = t[t["budget"] == c]
        full = g[g["data_fraction"] == g["data_fraction"].max()].iloc[0]
        rest = g[g["data_fraction"] < g["data_fraction"].max()]
        return cell(full, rule="mean"), cell(rest.loc[rest["mean"].idxmax()], rule="mean")

    (f0, s0), (f1, s1) = full_vs_subset(budgets[0]), full_vs_subset(budgets[-1])
    small = graded(f"compute-limited at C={budgets[0]:.3g}: the best subset (fraction {s0['data_fraction']:g}) does "
                   "better than the full data (full − subset)", cells, [(1, f0), (-1, s0)], direction="less")
    large = graded(f"data-limited at C={budgets[-1]:.3g}: the full data beats the best subset (fraction "
                   f"{s1['data_fraction']:g}) (full − subset)", cells, [(1, f1), (-1, s1)])
    grows = graded(f"the full data's advantage over the best subset grows from C={budgets[0]:.3g} to "
                   f"C={budgets[-1]:.3g} (difference of the two differences)", cells,
                   [(1, f1), (-1, s1), (-1, f0), (1, s0)])
    verdicts = [combined("For a fixed budget there is a best balance of capacity and data: small budgets "
                         "compute-limited, large ones data-limited (graded as the weaker of the two ends)",
                         [small, large]), small, large, grows]
    lines += ["", f"Best fraction from the smallest to the largest budget: "
                  f"{' -> '.join(f'{best[c]:g}' for c in budgets)}."]
    return lines, verdicts


def main(argv=None) -> Path:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--fixed-subset", action="store_true",
                   help="one subset per fraction (fraction seed 0) for every seed, instead of one per seed: the "
                        "standard errors then leave out the choice of subset")
    args = p.parse_args(argv)
    conf = preset(args, SMOKE, DEFAULT, CIFAR)
    conf["subset_per_seed"] = not args.fixed_subset
    from tuneall.planning.space import parse_space

    conf["space"] = parse_space(conf["space"])
    out = run(args, "seed003-data", conf)
    write_findings(out, "Seed 003: compute-data trade-off", *findings(out))
    return out


if __name__ == "__main__":
    main()
