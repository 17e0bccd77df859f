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
DEFAULT = dict(dataset="mnist1d", budgets="5e5:1.6e7:5", seeds=5,
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


# The seed's own words for each claim graded below (003_c718eca2b2e85bd3.txt).
QUOTES = {
    "balance": "For a given compute budget, there exists an optimal balance between model capacity and dataset size "
               "that maximizes learning efficiency.",
    "data_limited": "Data-Limited - model capacity exceeds data diversity - overfitting dominates - performance "
                    "improves with more data",
    "regimes": "Compute-Limited vs Data-Limited Regimes",
}
NOT_UNDER_C_PT = ("under C = P x T the data fraction costs no compute (T = C / P whatever the data), so no compute is "
                  "traded for data: the fraction only chooses unique examples vs repeats of them at the same number "
                  "of samples seen (T x batch). Testing it needs a budget that charges for data (e.g. samples seen "
                  "with a cost per unique example), which tuneall does not have")


def findings(out: Path) -> tuple[list[str], list[dict]]:
    from tuneall.reporting.claims import best_against_cells
    from tuneall.reporting.grading import not_tested, verdict

    cells = pd.read_csv(out / "cells.csv")
    s = pd.read_csv(out / "cells_summary.csv")
    s = s[s["rule"] == "mean"]
    t = pd.read_csv(out / "data_fraction.csv")
    lines = [_subset_note(out), "", "What this sweep tests: " + NOT_UNDER_C_PT[0].upper() + NOT_UNDER_C_PT[1:] + ". "
             "Read as unique data vs repeats at a fixed number of samples seen, the glossary's data-limited regime "
             "(more data helps once the model has seen its data many times) is testable; its compute-for-data "
             "balance is not.", "", "## Best accuracy per (budget, data fraction)", "",
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
    full = s["data_fraction"].max()

    def at(c):
        g = s[s["budget"] == c]
        return [cell(r) for _, r in g[g["data_fraction"] == full].iterrows()], \
            [cell(r) for _, r in g[g["data_fraction"] < full].iterrows()]

    verdicts = [not_tested("For a fixed compute budget there is a best balance of model capacity and data",
                           NOT_UNDER_C_PT, quote=QUOTES["balance"])]
    f1, s1 = at(budgets[-1])
    if f1 and s1:
        r = best_against_cells(cells, f1, s1)
        verdicts.append(verdict(f"Data-limited at the largest budget (C={budgets[-1]:.3g}, the most repeats): the full "
                                "data beats every subset at the same samples seen", r["effect"], r["se"], r["n"],
                                p=r["p"], candidates=r["candidates"],
                                basis="paired over seeds, best full-data cell vs every subset cell",
                                quote=QUOTES["data_limited"]))
    f0, s0 = at(budgets[0])
    if f0 and f1 and s0 and s1 and len(budgets) > 1:
        pick = lambda keys: max(keys, key=lambda k: s.set_index(["width", "k", "data_fraction", "budget"])  # noqa
                                .loc[(k["width"], k["k"], k["data_fraction"], k["budget"]), "mean"])
        terms = [(1, pick(f1)), (-1, pick(s1)), (-1, pick(f0)), (1, pick(s0))]
        g = graded("", cells, terms)
        verdicts.append(verdict(f"Unique data matters more as the budget grows: (full − best subset) at C="
                                f"{budgets[-1]:.3g} minus the same at C={budgets[0]:.3g} (the best subset at the "
                                f"smallest budget is picked among {len(s0)}: p x {len(s0)})", g["effect"], g["se"],
                                g["n"], candidates=len(s0), quote=QUOTES["regimes"]))
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
