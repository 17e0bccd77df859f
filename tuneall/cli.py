"""The ``tuneall`` command line: a thin layer over the Python API (:mod:`tuneall.api`).

Each command parses its options and calls one API function; shared options come from parent parsers, grouped
(budget, data, search, resources, output) with their defaults shown. User errors
(:class:`tuneall.core.errors.TuneallError`) become one line on stderr and exit code 2; nothing else is caught.
"""

from __future__ import annotations

import argparse
import sys

from tuneall.commands import cmd_plan, cmd_report, cmd_resume, cmd_search, cmd_sweep, cmd_train
from tuneall.commands import _exit_code, _print_outcome  # noqa: F401  (the outcome rules, tested through here)
from tuneall.core.config import COMBINE_RULES, DEFAULT_OBJECTIVE, OBJECTIVES, SEARCHERS
from tuneall.core.errors import NotStarted, TuneallError
from tuneall.options import (_Help, _Parser, _budget_opts, _data_opts, _member_opts, _parent, _recipe_opts,
                             _run_opts, _seconds, _space_opts, _unit_opts)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tuneall", formatter_class=_Help,
                     description="Find the best way to spend a training compute budget C: model width, depth, "
                                 "ensemble size k, steps (derived from C) and data fraction.",
                     epilog="examples:\n  tuneall plan --budget 3e7\n  tuneall search --budget 3e7 --trials 12\n"
                            "  tuneall sweep --budgets 5e5:1.6e7:5 --dataset mnist1d\n\n"
                            "Run `tuneall COMMAND --help` for a command's options.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    data, recipe = _parent(_data_opts), _parent(_recipe_opts)

    def command(name, help, epilog, parents=()):
        return sub.add_parser(name, help=help, description=help, epilog="examples:\n" + epilog,
                              parents=list(parents), formatter_class=_Help)

    p = command("plan", "list the feasible allocations for a budget (no training), or seed 001's design classes",
                "  tuneall plan --budget 3e7\n"
                "  tuneall plan --dataset cifar10 --budget 1e8 --widths 0.5,1,2 --k 1,2,4 --estimate\n"
                "  tuneall plan --family wrn --widths 4 --depths 28 --k 4        # design classes",
                [_parent(lambda q: _budget_opts(q, required=False)), data, _parent(_space_opts), recipe])
    g = p.add_argument_group("output")
    g.add_argument("--design", action="store_true",
                   help="with one family/width/depth/k and a --budget: the design classes with their steps")
    g.add_argument("--estimate", action="store_true",
                   help="time a few steps of each architecture here and add each allocation's training time")
    g.add_argument("--seeds", type=int, default=3, help="with --estimate: repeats over seeds")
    g.add_argument("--cpus-per-trial", type=float, default=1.0, help="with --estimate: threads per trial")
    g.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)

    p = command("train", "train and evaluate one allocation (k members x seeds) under the budget",
                "  tuneall train --budget 3e7 --width 1 --k 4\n"
                "  tuneall train --dataset mnist1d --budget 1e7 --width 0.5 --k 8 --rule geometric --json",
                [_parent(_budget_opts), data, recipe])
    g = p.add_argument_group("allocation")
    g.add_argument("--family", "--model", dest="family", default="cnn3",
                   help="model family cnn3 | resnet | wrn, or an import path mypkg.nets:make_mlp")
    g.add_argument("--width", type=float, default=1.0, help="width multiplier")
    g.add_argument("--depth", type=int, default=None, help="depth (default: the family's default)")
    g.add_argument("--k", type=int, default=1, help="ensemble size")
    g.add_argument("--data-fraction", type=float, default=1.0, help="fraction of the training set used")
    g = p.add_argument_group("evaluation and resources")
    g.add_argument("--seeds", type=int, default=3, help="repeats over seeds")
    g.add_argument("--rule", default="mean", choices=COMBINE_RULES, help="ensemble combination")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    g.add_argument("--cpus-per-trial", type=float, default=1.0,
                   help="torch threads (whole CPUs; default 1, as search and sweep, so the numbers match theirs)")
    _member_opts(g)
    g.add_argument("--json", action="store_true", help="machine-readable output")
    g.add_argument("-y", "--yes", action="store_true",
                   help="do not ask before a run estimated above an hour (asked only on a terminal, never in CI)")
    g = p.add_argument_group("output")
    g.add_argument("--storage-path", default="results", help="where the results directory goes")
    g.add_argument("--name", default=None,
                   help="results directory name (default: train-DATASET-BUDGET-FAMILY-wWIDTH-kK)")
    g.add_argument("--save-members", default="best", choices=("all", "best", "none"),
                   help="keep the members' weights (best = all = this allocation's); tuneall.load_ensemble reads them")
    p.set_defaults(func=cmd_train)

    run = _parent(_run_opts)
    p = command("search", "search the best allocation for a budget with Ray Tune + Optuna",
                "  tuneall search --budget 3e7 --trials 12\n"
                "  tuneall search --dataset mnist1d --budget 1e7 --searcher grid --space paper\n"
                "  tuneall search --budget 1e10 --dry-run                 # plan and time estimate only\n"
                "  tuneall search --budget 1e9 --trials 50 --time-budget 3600 --quiet\n"
                "  tuneall search --dataset cifar10 --budget 1e10 --trials 40 --gpus-per-trial 0.25",
                [_parent(_budget_opts), data, _parent(_space_opts), recipe, run])
    g = p.add_argument_group("search")
    g.add_argument("--searcher", default="tpe", choices=(*SEARCHERS, "auto"), help="Optuna sampler (grid: every feasible point, each member trained once; halving: successive halving on predicted accuracy at the full budget; auto: what benchmarks/search_cost.py --held-out supports (today tpe), the reason printed at the start)")
    g.add_argument("--trials", type=int, default=20, help="number of trials (ignored by grid)")
    g.add_argument("--rule", default="mean", choices=COMBINE_RULES, help="ensemble combination")
    g.add_argument("--objectives", default=DEFAULT_OBJECTIVE,
                   help=f"comma-separated metric[:min|max]; several = multi-objective; from {', '.join(OBJECTIVES)}")
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted search in its results directory (finished trials are kept)")
    g.add_argument("--study-storage", default=None,
                   help="Optuna storage URL, e.g. sqlite:///study.db (default: a journal file in the results dir)")
    g.add_argument("--parallel-members", action="store_true",
                   help="train a trial's members as parallel Ray tasks, one placement-group bundle each")
    g.add_argument("--dashboard", action="store_true", help="start Ray's dashboard on 127.0.0.1")
    g = p.add_argument_group("before and after the run")
    g.add_argument("--time-budget", type=_seconds, default=None, metavar="SECONDS",
                   help="wall-clock limit: no trial is started that would end after it; the report covers the "
                        "trials that ran")
    g.add_argument("--dry-run", action="store_true",
                   help="print the plan and the time estimate; train nothing, write nothing")
    g.add_argument("-y", "--yes", action="store_true",
                   help="do not ask before a search estimated above an hour (asked only on a terminal, never in CI)")
    g.add_argument("--save-members", default="best", choices=("all", "best", "none"),
                   help="keep the members' weights of the chosen allocation, of every trial, or none "
                        "(tuneall.load_ensemble reads them)")
    g.add_argument("--no-member-store", action="store_true",
                   help="train every trial's members afresh (default: members are answered from, and recorded in, "
                        "the results directory's member_store/; exact at a fixed thread count)")
    g.add_argument("--member-store", default=None, metavar="DIR",
                   help="a member store shared with other searches and sweeps (same data and recipe: they answer "
                        "and continue each other's members exactly) instead of the results directory's own")
    p.set_defaults(func=cmd_search)

    p = command("resume", "continue an interrupted search from its results directory",
                "  tuneall resume results/digits-3e+07-paper-tpe")
    p.add_argument("results_dir", help="the search's results directory")
    p.add_argument("--address", default=None, help="an existing Ray cluster HOST:PORT")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), metavar="{0,1,2}",
                   help="0: only the final answer and errors; 1: live lines; 2: also Ray's results")
    p.add_argument("-q", "--quiet", dest="verbose", action="store_const", const=0, help="the same as --verbose 0")
    p.set_defaults(func=cmd_resume)

    p = command("sweep", "the allocation study over several budgets, at about the cost of the largest",
                "  tuneall sweep --dataset mnist1d --budgets 5e5:1.6e7:5 --widths 0.25,0.5,1 --k 1,2,4\n"
                "  tuneall sweep --budgets 1e6,3e6,1e7 --space paper --executor local",
                [data, _parent(_space_opts), recipe, run])
    g = p.add_argument_group("budgets")
    g.add_argument("--budgets", required=True, help="comma-separated budgets (1e6,3e6,1e7) or LOW:HIGH:N log-spaced")
    _unit_opts(g)
    g = p.add_argument_group("sweep")
    g.add_argument("--rules", default="mean", help="comma-separated ensemble combinations: mean,geometric,vote")
    g.add_argument("--no-reuse", action="store_true", help="train every budget's cells fresh (no anytime reuse)")
    g.add_argument("--no-member-store", action="store_true",
                   help="train each job's members itself (default: members shared across k and budgets through the "
                        "results directory's member_store/, each trained once; exact at a fixed thread count)")
    g.add_argument("--member-store", default=None, metavar="DIR",
                   help="a member store shared with other searches and sweeps instead of the results directory's own")
    g.add_argument("--executor", default="ray", choices=("ray", "local"),
                   help="Ray Tune trials, or one after another in this process (no Ray)")
    p.set_defaults(func=cmd_sweep)

    p = command("report", "rebuild a results directory's report (a search's frontier or a sweep's cross-budget "
                          "report), figures and summary from disk, without training",
                "  tuneall report results/digits-3e7-paper")
    p.add_argument("results_dir", help="a search's or sweep's results directory")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    from tuneall.runner import signals

    signals.install()  # SIGINT and SIGTERM stop a run cleanly (tuneall.runner.signals)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except TuneallError as e:
        if isinstance(e, NotStarted):  # answered no before a long search: not an error
            print(f"tuneall: {e}", file=sys.stderr)
            return 1
        print(f"tuneall: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        signals.acknowledge()
        if not getattr(e, "printed", False):
            print(f"tuneall: {signals.describe(e)}", file=sys.stderr, flush=True)
        return signals.exit_code(e)
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
