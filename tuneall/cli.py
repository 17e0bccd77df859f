"""The ``tuneall`` command line: a thin layer over the Python API.

User errors (:class:`tuneall.errors.TuneallError`) become one line on stderr and exit code 2; nothing else is caught.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tuneall.errors import ConfigError, TuneallError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        self.exit(2, f"tuneall: error: {message}\n")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _finite(v):
    """NaN and infinities -> None, so that --json output is strict JSON."""
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _add_budget(p: argparse.ArgumentParser, required: bool = True) -> None:
    from tuneall.budget import DEFAULT_MIN_STEPS, UNITS

    p.add_argument("--budget", required=required, help="training compute budget C, e.g. 1e10")
    p.add_argument("--unit", default="param-steps", help=f"budget unit: {' | '.join(UNITS)} (default param-steps)")
    p.add_argument("--min-steps", type=int, default=DEFAULT_MIN_STEPS, help="minimum SGD steps per member")


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", help="cifar10 | cifar100 | digits | mnist1d | synthetic")
    p.add_argument("--data-dir", default=None, help="where datasets live (default $TUNEALL_DATA or ~/.cache/tuneall)")


def _add_optim(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 0.05)")
    p.add_argument("--momentum", type=float, default=None, help="SGD momentum (default 0.9)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default 128)")


def _space_from_args(args) -> "object":
    """A space file, or an ad-hoc space built from --family/--widths/--depths/--k flags."""
    from tuneall.space import load_space, parse_space, with_fixed

    flags = {"width": args.widths, "depth": args.depths, "k": args.k}
    optim = {"lr": args.lr, "momentum": args.momentum, "batch_size": args.batch_size}
    optim = {key: v for key, v in optim.items() if v is not None}
    if args.space and (args.family or any(v is not None for v in flags.values())):
        raise ConfigError("give either --space or --family/--widths/--depths/--k, not both")
    if args.space or not (args.family or any(v is not None for v in flags.values())):
        return with_fixed(load_space(args.space), **optim)
    doc = {"name": "command-line", "families": [args.family or "cnn3"], **optim}
    doc.update({key: v for key, v in flags.items() if v is not None})
    return parse_space(doc)


def _design_mode(args) -> bool:
    """`plan --family F --width W --depth D --k K` without a budget shows seed 001's three design classes."""
    one = lambda v: v is not None and len(v) == 1  # noqa: E731
    return bool(args.family) and one(args.widths) and one(args.k) and args.space is None and (
        args.budget is None or args.design)


def cmd_design(args) -> int:
    from tuneall.api import design

    table = design(family=args.family, width=args.widths[0], depth=args.depths[0] if args.depths else None,
                   k=args.k[0], dataset=args.dataset, budget=args.budget, unit=args.unit, min_steps=args.min_steps)
    if args.json:
        print(table.to_json(orient="records", indent=1))
        return 0
    print(f"Design classes of seed 001 for {args.family} width {args.widths[0]:g} and k = {args.k[0]} on "
          f"{args.dataset} (each ensemble the largest that fits k x |member| <= |single|):")
    print(table.to_string(index=False))
    return 0


def cmd_plan(args) -> int:
    from tuneall.api import plan

    if _design_mode(args):
        return cmd_design(args)
    if args.budget is None:
        raise ConfigError("--budget is required (without it, give --family, --width, --depth and --k to see the "
                          "design classes)")

    feasible, infeasible = plan(
        budget=args.budget, unit=args.unit, min_steps=args.min_steps, dataset=args.dataset,
        space=_space_from_args(args),
    )
    if args.estimate:
        from tuneall.data import dataset_info
        from tuneall.estimate import fmt_seconds, trial_seconds
        from tuneall.factory import Resources

        if args.seeds < 1:
            raise ConfigError(f"--estimate needs --seeds >= 1, got {args.seeds}")
        threads = Resources(cpus=args.cpus_per_trial).threads
        feasible["est_train_s"] = trial_seconds(feasible, dataset_info(args.dataset), args.seeds, threads)
        feasible["est_train"] = feasible["est_train_s"].map(fmt_seconds)
    if args.json:
        # to_json writes NaN as null, so the output is strict JSON.
        print(json.dumps({"feasible": json.loads(feasible.to_json(orient="records")),
                          "infeasible": json.loads(infeasible.to_json(orient="records"))}, indent=1))
        return 0
    cols = ["family", "width", "depth", "k", "params_per_member", "total_params", "steps", "train_flops", "spent"]
    if feasible["design"].notna().any():  # seed 001's design classes: show which single network each came from
        cols = ["design", "base_width", "base_depth", *cols]
    if feasible["data_fraction"].ne(1.0).any():
        cols.insert(cols.index("k") + 1, "data_fraction")
    if args.estimate:
        cols.append("est_train")
    print(f"{len(feasible)} feasible allocation(s) for C = {float(args.budget):.4g} {args.unit} on {args.dataset} "
          f"(at least {args.min_steps} steps per member"
          + (f"; est_train: {args.seeds} seed(s), {threads} thread(s), on this machine" if args.estimate
             else "") + "):")
    print(feasible[cols].to_string(index=False))
    if len(infeasible):
        print(f"\n{len(infeasible)} infeasible:")
        for reason in infeasible["reason"]:
            print(f"  {reason}")
    return 0


def cmd_train(args) -> int:
    from tuneall.api import train

    def progress(r, i, res):
        state = "DIVERGED" if res.diverged else f"loss {res.final_loss:.4f}"
        print(f"  repeat {r} member {i} (seed {res.seed}): {res.steps_done}/{res.steps} steps, {state}, "
              f"{res.train_time_s:.1f}s", flush=True)

    result = train(
        dataset=args.dataset, budget=args.budget, unit=args.unit, min_steps=args.min_steps, family=args.family or "cnn3",
        width=args.width, depth=args.depth, k=args.k, data_fraction=args.data_fraction, seeds=args.seeds,
        rule=args.rule, lr=args.lr, momentum=args.momentum, batch_size=args.batch_size, data_dir=args.data_dir,
        device=args.device, members=args.members, amp=args.amp, progress=None if args.json else progress,
    )
    if args.json:
        print(json.dumps(_finite({"plan": result.plan.row(), "metrics": result.metrics(), "members": result.members}),
                         default=str, indent=1, allow_nan=False))
        return 0
    p = result.plan
    print(f"\n{p.allocation.family} w={p.allocation.width:g} d={p.depth} k={p.k}: {p.params_per_member:,} params per "
          f"member, {p.steps} steps each, status {result.status}")
    print("members:")
    for m in result.members:
        print(f"  repeat {m['repeat']} member {m['member']}: acc {m['acc']:.4f}  nll {m['nll']:.4f}  "
              f"ece {m['ece']:.4f}{'  DIVERGED' if m['diverged'] else ''}")
    s = result.summary
    print(f"ensemble ({args.rule}) over {len(result.repeats)} seed(s):")
    for name in ("ensemble_acc", "ensemble_nll", "ensemble_ece", "member_acc_mean", "disagreement"):
        print(f"  {name:16s} {s[name + '_mean']:.4f} ± {s[name + '_std']:.4f}  (worst {s[name + '_worst']:.4f})")
    return 0


def cmd_search(args) -> int:
    from tuneall.api import search

    front = search(
        budget=args.budget, unit=args.unit, min_steps=args.min_steps, dataset=args.dataset, data_dir=args.data_dir,
        space=args.space, searcher=args.searcher, trials=args.trials, concurrency=args.concurrency, seeds=args.seeds,
        rule=args.rule, objectives=args.objectives, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, parallel_members=args.parallel_members, members=args.members,
        amp=args.amp, name=args.name,
        storage_path=args.storage_path, address=args.address, num_cpus=args.num_cpus, dashboard=args.dashboard,
        seed=args.seed, max_failures=args.max_failures, resume=args.resume, study_storage=args.study_storage,
        lr=args.lr, momentum=args.momentum,
        batch_size=args.batch_size, argv=["tuneall", *sys.argv[1:]] if argv_is_cli() else None, verbose=args.verbose,
    )
    _print_outcome(front.attrs.get("results_dir"), front)
    return 0 if front.attrs.get("complete", True) else 130


def argv_is_cli() -> bool:
    return bool(sys.argv) and sys.argv[0].endswith("tuneall")


def _print_outcome(results_dir, front) -> None:
    if front.empty:
        print("\nNo trial trained successfully; see the trials table.")
    else:
        b = front.iloc[0]
        print(f"\nBest allocation: {b['family']} width {b['width']:g} depth {int(b['depth'])} k={int(b['k'])} "
              f"({int(b['steps'])} steps per member): ensemble accuracy {b['ensemble_acc_mean']:.4f} "
              f"± {b['ensemble_acc_std']:.4f}")
    if results_dir:
        print(f"Summary: {results_dir}/summary.md")


def cmd_resume(args) -> int:
    from tuneall.api import resume

    front = resume(args.results_dir, address=args.address, num_cpus=args.num_cpus, verbose=args.verbose)
    _print_outcome(front.attrs.get("results_dir"), front)
    return 0 if front.attrs.get("complete", True) else 130


def cmd_report(args) -> int:
    from tuneall.report import build_report

    out = Path(args.results_dir)
    if (out / "sweep.json").exists():  # a `tuneall sweep` directory: its cross-budget report
        from tuneall.sweep_report import build_sweep_report

        if not (out / "cells.csv").exists():
            raise ConfigError(f"{args.results_dir} is a sweep that never finished (no cells.csv); run it again")
        build_sweep_report(args.results_dir)
        print(f"Summary: {args.results_dir}/summary.md")
        return 0
    front = build_report(args.results_dir)
    _print_outcome(args.results_dir, front)
    return 0


def cmd_sweep(args) -> int:
    from tuneall.sweep import parse_budgets, sweep

    budgets = parse_budgets(args.budgets)  # bad --budgets: BudgetError -> one line, exit 2
    out = sweep(
        budgets, dataset=args.dataset, space=_space_from_args(args), unit=args.unit, min_steps=args.min_steps,
        seeds=args.seeds, rules=args.rules, reuse=not args.no_reuse, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, members=args.members, amp=args.amp,
        argv=["tuneall", *sys.argv[1:]] if argv_is_cli() else None,
        verbose=args.verbose, data_dir=args.data_dir, concurrency=args.concurrency, name=args.name,
        storage_path=args.storage_path, address=args.address, num_cpus=args.num_cpus, seed=args.seed,
        max_failures=args.max_failures,
    )
    meta = json.loads((out / "sweep.json").read_text())["sweep"]
    print(f"\n{meta['reuse_note']}: {meta['member_steps_trained']:,} member-steps trained (largest budget alone: "
          f"{meta['member_steps_largest_budget']:,}; fresh at every budget: {meta['member_steps_without_reuse']:,})")
    print(f"Summary: {out}/summary.md")
    return 0


def _add_members(p) -> None:
    p.add_argument("--members", default="sequential",
                   help="how a trial trains its k members: sequential | vectorized (one vmap-ed network) | auto "
                        "(whichever a few timed steps show faster here); default sequential")
    p.add_argument("--amp", action="store_true", help="mixed precision (with --members vectorized or auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tuneall", description="Find the best way to spend a training compute budget.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("plan", help="list feasible allocations for a budget, or seed 001's design classes")
    _add_budget(p, required=False)
    _add_data(p)
    p.add_argument("--space", default=None, help="search space YAML (path or name in search_spaces/)")
    p.add_argument("--family", default=None, help="model family (instead of --space)")
    p.add_argument("--widths", type=_floats, default=None, help="comma-separated width multipliers")
    p.add_argument("--depths", type=_ints, default=None, help="comma-separated depths")
    p.add_argument("--k", type=_ints, default=None, help="comma-separated ensemble sizes")
    p.add_argument("--design", action="store_true",
                   help="with one family/width/depth/k and a --budget: the design classes with their steps")
    _add_optim(p)
    p.add_argument("--estimate", action="store_true",
                   help="time a few steps of each architecture here and add each allocation's training time "
                        "(--seeds seeds, --cpus-per-trial threads)")
    p.add_argument("--seeds", type=int, default=3, help="with --estimate: repeats over seeds (default 3)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="with --estimate: threads per trial (default 1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("train", help="train and evaluate one allocation")
    _add_budget(p)
    _add_data(p)
    p.add_argument("--family", default="cnn3")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--k", type=int, default=1, help="ensemble size")
    p.add_argument("--data-fraction", type=float, default=1.0)
    p.add_argument("--seeds", type=int, default=3, help="repeats over seeds (default 3)")
    p.add_argument("--rule", default="mean", help="ensemble combination: mean | geometric | vote")
    p.add_argument("--device", default="cpu")
    _add_members(p)
    _add_optim(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    from tuneall.tuner import OBJECTIVES, SEARCHERS

    p = sub.add_parser("search", help="search the best allocation for a budget with Ray Tune + Optuna")
    _add_budget(p)
    _add_data(p)
    p.add_argument("--space", default=None, help="search space YAML (path or name in search_spaces/; default paper)")
    p.add_argument("--searcher", default="tpe", help=f"{' | '.join(SEARCHERS)} (grid: every feasible point)")
    p.add_argument("--trials", type=int, default=20, help="number of trials (ignored by grid)")
    p.add_argument("--concurrency", type=int, default=None, help="trials at a time (default: as CPUs allow)")
    p.add_argument("--seeds", type=int, default=3, help="repeats of each allocation over seeds (default 3)")
    p.add_argument("--rule", default="mean", help="ensemble combination: mean | geometric | vote")
    p.add_argument("--objectives", default="ensemble_acc_mean",
                   help=f"comma-separated metric[:min|max]; several = multi-objective. One of {', '.join(OBJECTIVES)}")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions allowed, e.g. 0.25")
    p.add_argument("--parallel-members", action="store_true",
                   help="train a trial's members as parallel Ray tasks, one placement-group bundle each")
    _add_members(p)
    p.add_argument("--name", default=None, help="results directory name (default from dataset, budget, space)")
    p.add_argument("--storage-path", default="results", help="where results directories go (default ./results)")
    p.add_argument("--address", default=None, help="an existing Ray cluster HOST:PORT (default: start a local Ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--dashboard", action="store_true", help="start the Ray dashboard on 127.0.0.1")
    p.add_argument("--seed", type=int, default=0, help="sampler seed and base seed of the members")
    p.add_argument("--max-failures", type=int, default=0, help="retries of a trial whose process dies")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted search in its results directory (finished trials are kept)")
    p.add_argument("--study-storage", default=None,
                   help="Optuna storage URL, e.g. sqlite:///study.db (default: a journal file in the results dir)")
    p.add_argument("--verbose", type=int, default=1, help="Ray Tune verbosity 0-3")
    _add_optim(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("resume", help="continue an interrupted search from its results directory")
    p.add_argument("results_dir")
    p.add_argument("--address", default=None, help="an existing Ray cluster HOST:PORT")
    p.add_argument("--num-cpus", type=int, default=None)
    p.add_argument("--verbose", type=int, default=1)
    p.set_defaults(func=cmd_resume)

    from tuneall.budget import DEFAULT_MIN_STEPS

    p = sub.add_parser("sweep", help="the allocation study over several budgets, at about the cost of the largest")
    p.add_argument("--budgets", required=True, help="comma-separated budgets (1e6,3e6,1e7) or LOW:HIGH:N log-spaced")
    p.add_argument("--unit", default="param-steps", help="budget unit: param-steps | flops (default param-steps)")
    p.add_argument("--min-steps", type=int, default=DEFAULT_MIN_STEPS, help="minimum SGD steps per member")
    _add_data(p)
    p.add_argument("--space", default=None, help="search space YAML (path or name in search_spaces/; default paper)")
    p.add_argument("--family", default=None, help="model family (instead of --space)")
    p.add_argument("--widths", type=_floats, default=None, help="comma-separated width multipliers")
    p.add_argument("--depths", type=_ints, default=None, help="comma-separated depths")
    p.add_argument("--k", type=_ints, default=None, help="comma-separated ensemble sizes")
    p.add_argument("--seeds", type=int, default=3, help="repeats of each allocation over seeds (default 3)")
    p.add_argument("--rules", default="mean", help="comma-separated ensemble combinations: mean,geometric,vote")
    p.add_argument("--no-reuse", action="store_true", help="train every budget's cells fresh (no anytime reuse)")
    p.add_argument("--concurrency", type=int, default=None, help="trials at a time (default: as CPUs allow)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions allowed, e.g. 0.25")
    _add_members(p)
    p.add_argument("--name", default=None, help="results directory name (default from dataset, budgets, space)")
    p.add_argument("--storage-path", default="results", help="where results directories go (default ./results)")
    p.add_argument("--address", default=None, help="an existing Ray cluster HOST:PORT (default: start a local Ray)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--seed", type=int, default=0, help="base seed of the members")
    p.add_argument("--max-failures", type=int, default=0, help="retries of a trial whose process dies")
    p.add_argument("--verbose", type=int, default=1, help="Ray Tune verbosity 0-3")
    _add_optim(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="rebuild the frontier (or a sweep's cross-budget report), figures and summary "
                                      "of a results directory")
    p.add_argument("results_dir")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TuneallError as e:
        print(f"tuneall: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tuneall: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
