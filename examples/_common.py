"""Shared command line of the seed examples: scale presets (smoke test, default, the paper's CIFAR-10 setting)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

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
        from tuneall.sweep_report import build_sweep_report

        build_sweep_report(args.report_only)
        return Path(args.report_only)

    conf = dict(conf)
    budgets = conf.pop("budgets")
    out_name = args.name or name + ("-smoke" if args.smoke_test else "-cifar10" if args.cifar else
                                    f"-{conf.get('dataset', 'mnist1d')}")
    target = Path(args.out) / out_name
    if target.exists() and args.overwrite:
        shutil.rmtree(target)
    return sweep(budgets, storage_path=args.out, name=out_name, num_cpus=args.num_cpus, address=args.address,
                 data_dir=args.data_dir, verbose=args.verbose if not args.smoke_test else 0,
                 executor="local" if args.local else "ray",
                 argv=[Path(sys.argv[0]).name, *sys.argv[1:]], **conf)


def write_findings(out: Path, title: str, lines: list[str]) -> Path:
    """findings.md in the results directory: the seed's claims checked in numbers; also printed."""
    text = "\n".join([f"# {title}", "", *lines, ""])
    (out / "findings.md").write_text(text)
    print("\n" + text)
    return out / "findings.md"
