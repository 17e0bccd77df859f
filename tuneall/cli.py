"""The ``tuneall`` command line: a thin layer over the Python API (:mod:`tuneall.api`).

Each command parses its options and calls one API function; shared options come from parent parsers, grouped
(budget, data, search, resources, output) with their defaults shown. User errors
(:class:`tuneall.core.errors.TuneallError`) become one line on stderr and exit code 2; nothing else is caught.
"""

from __future__ import annotations

import argparse
import json
import sys

from tuneall.core.budget import DEFAULT_MIN_STEPS, UNITS
from tuneall.core.config import COMBINE_RULES, DEFAULT_OBJECTIVE, MEMBER_METHODS, OBJECTIVES, OPTIMIZERS, SEARCHERS
from tuneall.core.errors import ConfigError, TuneallError

DATASETS = "cifar10 | cifar100 | digits | mnist1d | synthetic"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        self.exit(2, f"tuneall: error: {message}\n")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help (unless the help says it, or there is none); epilogs kept as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: {action.default})"


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return v


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


def _argv() -> list[str] | None:
    """The command as typed, for the results directory's provenance (None when not run as `tuneall`)."""
    return ["tuneall", *sys.argv[1:]] if sys.argv and sys.argv[0].endswith("tuneall") else None


# --- parent parsers: each shared option declared once ---------------------------------------------------------

def _parent(*adders) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    for add in adders:
        add(p)
    return p


def _budget_opts(p, required: bool = True) -> None:
    g = p.add_argument_group("budget")
    g.add_argument("--budget", required=required, default=None, help="training compute budget C, e.g. 1e10")
    _unit_opts(g)


def _unit_opts(g) -> None:
    g.add_argument("--unit", default="param-steps", help=f"budget unit: {' | '.join(UNITS)}")
    g.add_argument("--min-steps", type=int, default=DEFAULT_MIN_STEPS, help="minimum SGD steps per member")


def _data_opts(p) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", "--data", dest="dataset", default="digits",
                   help=f"{DATASETS}, or your own data by import path: mypkg.data:load or path/to/file.py:load "
                        "(a function returning tensors; see tuneall.data.user)")
    g.add_argument("--data-dir", default=None, help="where datasets live (default: $TUNEALL_DATA or ~/.cache/tuneall)")
    g.add_argument("--val-fraction", type=float, default=0.1,
                   help="share of the training split held out as validation, which chooses the best allocation")


def _recipe_opts(p) -> None:
    g = p.add_argument_group("training recipe (fixed learning rate: what keeps anytime evaluation exact)")
    g.add_argument("--optimizer", default=None, choices=OPTIMIZERS,
                   help="sgd (with momentum) or adamw (default: the space's, else sgd)")
    g.add_argument("--lr", type=float, default=None, help="learning rate (default: the space's, else 0.05)")
    g.add_argument("--momentum", type=float, default=None, help="SGD momentum (default: the space's, else 0.9)")
    g.add_argument("--weight-decay", type=float, default=None, help="weight decay (default: the space's, else 0)")
    g.add_argument("--batch-size", type=int, default=None, help="batch size (default: the space's, else 128)")
    g.add_argument("--label-smoothing", type=float, default=None,
                   help="cross-entropy label smoothing in [0, 1) (default: the space's, else 0)")


def _space_opts(p, plan: bool = False) -> None:
    g = p.add_argument_group("allocations (a space file, or an ad-hoc grid)")
    g.add_argument("--space", default=None,
                   help="search space: a packaged name (paper, wide, data, tuned, more_or_less) or a YAML file "
                        "(default: paper)")
    g.add_argument("--family", "--model", dest="family", default=None,
                   help="model family cnn3 | resnet | wrn, or your own factory fn(width, depth, input_shape, "
                        "num_classes) by import path: mypkg.nets:make_mlp or path/to/file.py:make_mlp (instead of "
                        "--space; without --widths, the family's own width grid)")
    g.add_argument("--widths", type=_floats, default=None, help="comma-separated width multipliers")
    g.add_argument("--depths", type=_ints, default=None, help="comma-separated depths")
    g.add_argument("--k", type=_ints, default=None, help="comma-separated ensemble sizes")


def _member_opts(g) -> None:
    g.add_argument("--members", default="sequential", choices=MEMBER_METHODS,
                   help="how a trial trains its k members: one after another, as one vmap-ed network, or "
                        "whichever a few timed steps show faster here")
    g.add_argument("--amp", action="store_true", help="mixed precision (with --members vectorized or auto)")


def _run_opts(p) -> None:
    g = p.add_argument_group("resources")
    g.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs (= torch threads) of each trial")
    g.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs of each trial; fractions share a GPU")
    g.add_argument("--concurrency", type=int, default=None, help="trials at a time (default: as the CPUs allow)")
    _member_opts(g)
    g.add_argument("--address", default=None, help="an existing Ray cluster HOST:PORT (default: start a local Ray)")
    g.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    g.add_argument("--max-failures", type=int, default=0, help="retries of a trial whose process dies")
    o = p.add_argument_group("output")
    o.add_argument("--name", default=None, help="results directory name (default: from dataset, budget, space)")
    o.add_argument("--storage-path", default="results", help="where results directories go")
    o.add_argument("--seeds", type=int, default=3, help="repeats of each allocation over seeds")
    o.add_argument("--seed", type=int, default=0, help="sampler seed and base seed of the members")
    o.add_argument("--verbose", type=int, default=1,
                   help="0: only the final answer and errors; 1: tuneall's lines (a line per finished trial, a "
                        "heartbeat per running trial); 2: also Ray's table of trials; 3: also Ray's result of every "
                        "trial")
    o.add_argument("-q", "--quiet", dest="verbose", action="store_const", const=0,
                   help="the same as --verbose 0")


def _space(args):
    from tuneall.api import make_space

    return make_space(args.space, family=args.family, widths=args.widths, depths=args.depths, k=args.k,
                      lr=args.lr, momentum=args.momentum, batch_size=args.batch_size, weight_decay=args.weight_decay,
                      optimizer=args.optimizer, label_smoothing=args.label_smoothing)


# --- commands ----------------------------------------------------------------------------------------------------

def _design_mode(args) -> bool:
    """`plan --family F --widths W --depths D --k K` without a budget shows seed 001's three design classes."""
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


def _searcher_advice(feasible) -> None:
    """Say when the grid with member reuse is the natural search: a small discrete space costs little more than a
    few trials when each member is trained once (tuneall.store.reuse)."""
    from tuneall.tuning.search_cost import grid_reuse_cost

    cost = grid_reuse_cost(feasible)
    saving = cost["fresh"] / max(1, cost["reuse"])
    if cost["points"] <= 60:
        print(f"\nsearcher: --searcher grid (member store on) trains each member once: {cost['reuse']:,} member-steps "
              f"per seed for all {cost['points']} points instead of {cost['fresh']:,} (x{saving:.2f} fewer); for a "
              f"small discrete space like this, the natural choice over tpe/random (about {cost['points']} x C per "
              f"seed fresh; with reuse about {cost['points'] / saving:.1f} x C)")


def cmd_plan(args) -> int:
    from tuneall.api import plan

    if _design_mode(args):
        return cmd_design(args)
    if args.budget is None:
        raise ConfigError("--budget is required (without it, give --family, --widths, --depths and --k to see the "
                          "design classes)")
    feasible, infeasible = plan(budget=args.budget, unit=args.unit, min_steps=args.min_steps, dataset=args.dataset,
                                space=_space(args), estimate=args.estimate, seeds=args.seeds,
                                cpus_per_trial=args.cpus_per_trial)
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
          + (f"; est_train: {feasible.attrs['seeds']} seed(s), {feasible.attrs['threads']} thread(s), on this "
             "machine" if args.estimate else "") + "):")
    print(feasible[cols].to_string(index=False))
    _searcher_advice(feasible)
    if len(infeasible):
        print(f"\n{len(infeasible)} infeasible:")
        for reason in infeasible["reason"]:
            print(f"  {reason}")
    return 0


def cmd_train(args) -> int:
    from tuneall.api import train

    def progress(r, i, res):
        state = "DIVERGED" if res.diverged else f"loss {res.final_loss:.4f}"
        print(f"tuneall: member {i + 1} of {args.k}, seed {r + 1} of {args.seeds} done: "
              f"{res.steps_done}/{res.steps} steps, {state}, {res.train_time_s:.1f} s", flush=True)

    result = train(
        dataset=args.dataset, budget=args.budget, unit=args.unit, min_steps=args.min_steps, family=args.family or "cnn3",
        width=args.width, depth=args.depth, k=args.k, data_fraction=args.data_fraction, seeds=args.seeds,
        rule=args.rule, lr=args.lr, momentum=args.momentum, batch_size=args.batch_size,
        weight_decay=args.weight_decay, optimizer=args.optimizer, label_smoothing=args.label_smoothing,
        data_dir=args.data_dir,
        device=args.device, members=args.members, amp=args.amp, progress=None if args.json else progress,
        storage_path=args.storage_path, name=args.name, save_members=args.save_members, argv=_argv(),
        val_fraction=args.val_fraction, cpus_per_trial=args.cpus_per_trial,
    )
    out = getattr(result, "attrs", {}).get("results_dir")
    if args.json:
        print(json.dumps(_finite({"plan": result.plan.row(), "metrics": result.metrics(), "members": result.members,
                                  "results_dir": out}), default=str, indent=1, allow_nan=False))
        return 0
    p = result.plan
    print(f"\n{p.allocation.family} w={p.allocation.width:g} d={p.depth} k={p.k}: {p.params_per_member:,} params per "
          f"member, {p.steps} steps each, status {result.status}")
    print("members:")
    for m in result.members:
        print(f"  repeat {m['repeat']} member {m['member']}: acc {m['acc']:.4f}  nll {m['nll']:.4f}  "
              f"ece {m['ece']:.4f}{'  DIVERGED' if m['diverged'] else ''}")
    s = result.summary
    print(f"ensemble ({args.rule}) over {len(result.repeats)} seed(s), on the test split:")
    for name in ("ensemble_acc", "ensemble_nll", "ensemble_ece", "member_acc_mean", "disagreement"):
        print(f"  {name:16s} {s[name + '_mean']:.4f} ± {s[name + '_std']:.4f}  (worst {s[name + '_worst']:.4f})")
    if "val_ensemble_acc_mean" in s:
        print(f"validation split: ensemble_acc {s['val_ensemble_acc_mean']:.4f} ± {s['val_ensemble_acc_std']:.4f}, "
              f"ensemble_nll {s['val_ensemble_nll_mean']:.4f}")
    print(f"Results: {out}")
    return 0


def cmd_search(args) -> int:
    from tuneall.api import search

    front = search(
        budget=args.budget, unit=args.unit, min_steps=args.min_steps, dataset=args.dataset, data_dir=args.data_dir,
        space=_space(args), searcher=args.searcher, trials=args.trials, concurrency=args.concurrency,
        seeds=args.seeds, rule=args.rule, objectives=args.objectives, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, parallel_members=args.parallel_members, members=args.members,
        amp=args.amp, name=args.name, storage_path=args.storage_path, address=args.address, num_cpus=args.num_cpus,
        dashboard=args.dashboard, seed=args.seed, max_failures=args.max_failures, resume=args.resume,
        study_storage=args.study_storage, val_fraction=args.val_fraction, argv=_argv(), verbose=args.verbose,
        time_budget=args.time_budget, dry_run=args.dry_run, confirm=not args.yes, save_members=args.save_members,
        member_store=not args.no_member_store,
    )
    if front.attrs.get("dry_run"):
        return 0
    _print_outcome(front.attrs.get("results_dir"), front)
    return _exit_code(front)


def _exit_code(front) -> int:
    """A search's exit status: 130 interrupted (resume it), 1 finished without an answer (every trial failed,
    diverged or was infeasible), 0 answered."""
    if not front.attrs.get("complete", True):
        return 130
    no_answer = "best" in front.attrs and front.attrs["best"] is None and front.empty  # the report found none
    return 1 if no_answer else 0


def _print_outcome(results_dir, front) -> None:
    """The final answer: the best allocation (as the summary names it), its split, and what is tied with it."""
    b = front.attrs.get("best")
    if b is None and not front.empty:  # a frontier built without the report's choice (e.g. an old API caller)
        b = front.iloc[0].to_dict()
    if b is None:
        print("\nNo answer: no trial trained successfully (the summary names the first error).")
    else:
        val = b.get("val_ensemble_acc_mean")
        chosen = (f"validation accuracy {val:.4f} ± {b['val_ensemble_acc_std']:.4f} (chosen on validation), test "
                  if val is not None and val == val else "(chosen on test) ")
        print(f"\nBest allocation: {b['family']} width {b['width']:g} depth {int(b['depth'])} k={int(b['k'])} "
              f"({int(b['steps'])} steps per member): {chosen}ensemble accuracy {b['ensemble_acc_mean']:.4f} "
              f"± {b['ensemble_acc_std']:.4f}")
        tied = front.attrs.get("tied") or []
        pb = front.attrs.get("p_best")
        if pb is not None and pb == pb:
            print(f"P(best) {pb:.2f}" + ("" if front.attrs.get("determined") else
                                         ": UNDETERMINED, the data cannot choose among the tied allocations"))
        if tied:
            shown = "; ".join(tied[:5]) + (f"; and {len(tied) - 5} more" if len(tied) > 5 else "")
            print(f"Tied with it ({front.attrs.get('tie_test', '')}): {shown}")
        elif "tied" in front.attrs:
            print(f"Separated from every other allocation ({front.attrs.get('tie_test', '')})")
    if results_dir:
        print(f"Summary: {results_dir}/summary.md")


def cmd_resume(args) -> int:
    from tuneall.api import resume

    front = resume(args.results_dir, address=args.address, num_cpus=args.num_cpus, verbose=args.verbose,
                   argv=_argv())
    _print_outcome(front.attrs.get("results_dir"), front)
    return _exit_code(front)


def cmd_report(args) -> int:
    from tuneall.api import report

    out = report(args.results_dir)
    if out["kind"] == "sweep":
        print(f"Summary: {out['results_dir']}/summary.md")
    else:
        _print_outcome(out["results_dir"], out["frontier"])
    return 0


def cmd_sweep(args) -> int:
    from tuneall.api import sweep

    out = sweep(
        args.budgets, dataset=args.dataset, space=_space(args), unit=args.unit, min_steps=args.min_steps,
        seeds=args.seeds, rules=args.rules, reuse=not args.no_reuse, member_store=not args.no_member_store,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, members=args.members, amp=args.amp, argv=_argv(),
        verbose=args.verbose, data_dir=args.data_dir, concurrency=args.concurrency, name=args.name,
        storage_path=args.storage_path, address=args.address, num_cpus=args.num_cpus, seed=args.seed,
        max_failures=args.max_failures, executor=args.executor, val_fraction=args.val_fraction,
    )
    print(f"Summary: {out}/summary.md")
    return 0


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
    g.add_argument("--searcher", default="tpe", choices=SEARCHERS, help="Optuna sampler (grid: every feasible point, each member trained once; halving: successive halving on predicted accuracy at the full budget)")
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
    p.set_defaults(func=cmd_search)

    p = command("resume", "continue an interrupted search from its results directory",
                "  tuneall resume results/digits-3e+07-paper-tpe")
    p.add_argument("results_dir", help="the search's results directory")
    p.add_argument("--address", default=None, help="an existing Ray cluster HOST:PORT")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--verbose", type=int, default=1, help="0: only the final answer and errors; 1: live lines")
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
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TuneallError as e:
        if type(e).__name__ == "NotStarted":  # answered no before a long search: not an error
            print(f"tuneall: {e}", file=sys.stderr)
            return 1
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
