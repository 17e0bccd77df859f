"""Shared command line of the seed examples: scale presets (smoke test, default, the paper's CIFAR-10 setting)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke-test", action="store_true", help="seconds-long run on digits (used by the tests)")
    p.add_argument("--cifar", action="store_true",
                   help="the paper's own setting on CIFAR-10 (needs the data in --data-dir and a GPU)")
    p.add_argument("--dataset", default=None, help="override the preset's dataset (default mnist1d)")
    p.add_argument("--seeds", type=int, default=None, help="override the preset's number of seeds")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(ROOT / "results"), help="where the results directory goes")
    p.add_argument("--name", default=None, help="results directory name (default: the example's name)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing results directory of that name")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--address", default=None, help="an existing Ray cluster")
    p.add_argument("--gpus-per-trial", type=float, default=None)
    p.add_argument("--report-only", default=None, metavar="DIR",
                   help="rebuild the report and findings of an existing results directory; trains nothing")
    p.add_argument("--local", action="store_true",
                   help="run the trials one after another in this process instead of Ray Tune (no start-up cost)")
    p.add_argument("--verbose", type=int, default=1)
    return p


def preset(args, smoke: dict, default: dict, cifar: dict) -> dict:
    """The run's settings: one of the three scales, with --dataset / --seeds overrides."""
    conf = dict(smoke if args.smoke_test else cifar if args.cifar else default)
    if args.dataset:
        conf["dataset"] = args.dataset
    if args.seeds:
        conf["seeds"] = args.seeds
    if args.gpus_per_trial is not None:
        conf["gpus_per_trial"] = args.gpus_per_trial
    return conf


def run(args, name: str, conf: dict) -> Path:
    """Run the sweep of ``conf`` into ``--out/--name``; returns the results directory."""
    from tuneall.api import sweep

    if args.report_only:
        from tuneall.sweeping.report import build_sweep_report

        build_sweep_report(args.report_only)
        return Path(args.report_only)

    conf = dict(conf)
    budgets = conf.pop("budgets")
    out_name = args.name or name + ("-smoke" if args.smoke_test else "-cifar10" if args.cifar else
                                    f"-{conf.get('dataset', 'mnist1d')}")
    target = Path(args.out) / out_name
    # --overwrite keeps the old directory beside the new run until it finishes: a stopped or failed rerun puts it back
    # (a SIGKILLed one leaves it as .NAME.old, named on the way in).
    old = target.with_name(f".{target.name}.old")
    if target.exists() and args.overwrite:
        if old.exists():
            print(f"{old} is left from an earlier --overwrite: restore it to {target} or delete it first",
                  file=sys.stderr)
            sys.exit(2)  # a user error, as tuneall's own: one line, exit 2, nothing touched
        target.rename(old)
        print(f"the old {target.name} is kept as {old} until the new run finishes", flush=True)
    try:
        out = sweep(budgets, storage_path=args.out, name=out_name, num_cpus=args.num_cpus, address=args.address,
                    data_dir=args.data_dir, verbose=args.verbose if not args.smoke_test else 0,
                    executor="local" if args.local else "ray",
                    argv=[Path(sys.argv[0]).name, *sys.argv[1:]], **conf)
    except BaseException:
        if old.exists():
            shutil.rmtree(target, ignore_errors=True)
            old.rename(target)
            print(f"the run did not finish: the old {target.name} is restored", file=sys.stderr, flush=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out


def cell(row, **over) -> dict:
    """A summary-table row as the cell key that :func:`tuneall.reporting.analysis.contrast` matches (plus overrides)."""
    from tuneall.reporting.analysis import PLAN_KEYS

    return {**{k: v for k, v in dict(row).items() if k not in PLAN_KEYS and k not in
               ("mean", "std", "worst", "n", "line", "best_fraction", "gap_to_best")}, **over}


def graded(claim: str, cells: pd.DataFrame, terms, direction: str = "greater") -> dict:
    """A claim graded on a contrast of cells paired over seeds (:func:`tuneall.reporting.analysis.contrast`)."""
    from tuneall.reporting.analysis import contrast
    from tuneall.reporting.grading import verdict

    effect, se, n = contrast(cells, terms)
    return verdict(claim, effect, se, n, direction, basis="paired over seeds")


def command_of(out: Path) -> str:
    meta = json.loads((out / "sweep.json").read_text())
    cmd = meta.get("command") or []
    return "python examples/" + " ".join(map(str, cmd)) if cmd else "(not recorded)"


def write_findings(out: Path, title: str, lines: list[str], verdicts: list[dict] = ()) -> Path:
    """findings.md in the results directory: the command, the seed's claims graded by :mod:`tuneall.reporting.grading`
    (also written to ``verdicts.csv``), the power-law hold-out, then the supporting tables; also printed."""
    from tuneall.reporting.grading import VERDICT_COLUMNS, verdict_line
    from tuneall.reporting.powerlaw import holdout_statement

    pd.DataFrame(list(verdicts), columns=VERDICT_COLUMNS).to_csv(out / "verdicts.csv", index=False)
    head = [f"Command: `{command_of(out)}`", "",
            "Verdicts are computed, never written by hand (`tuneall.reporting.grading`): each claim is quoted from the "
            "seed and graded as stated on the cells that test it. REPRODUCED: in the claimed direction with one-sided "
            "p < 0.05 (Student t with n - 1 df over the seeds, paired: repeat r of every allocation shares its seeds; "
            "a cell picked among m candidates pays x m, and a pick that must beat several rivals is tested against "
            "each); WEAK: the direction holds, the evidence does not; NOT TESTED: this grid cannot test the claim "
            "as stated (the reason is given; no proxy is graded instead); NOT REPRODUCED: otherwise.", "",
            "## Verdicts", ""]
    head += [f"- {verdict_line(v)}" for v in verdicts] + [""]
    def table(name):
        try:
            return pd.read_csv(out / name)
        except (OSError, pd.errors.EmptyDataError):
            return pd.DataFrame()

    head += ["## Hold-out of the power-law extrapolation", "",
             holdout_statement(table("holdout.csv"), choice=table("allocation_holdout.csv")), ""]
    text = "\n".join([f"# {title}", "", *head, *lines, ""])
    (out / "findings.md").write_text(text)
    print("\n" + text)
    return out / "findings.md"
