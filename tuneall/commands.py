"""The command line's actions: each command's options turned into one call of the Python API (:mod:`tuneall.api`)
and its answer printed."""

from __future__ import annotations

import json
import sys

from tuneall.core.errors import ConfigError


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


def _space(args):
    from tuneall.api import make_space

    return make_space(args.space, family=args.family, widths=args.widths, depths=args.depths, k=args.k,
                      **_recipe(args))


def _recipe(args) -> dict:
    """The recipe options as the API's keywords (``--lr`` -> ``lr=``; None where not given)."""
    from tuneall.core.config import RECIPE_FIELDS

    return {name: getattr(args, name) for name in RECIPE_FIELDS}


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
        rule=args.rule, **_recipe(args), data_dir=args.data_dir,
        device=args.device, members=args.members, amp=args.amp, progress=None if args.json else progress,
        storage_path=args.storage_path, name=args.name, save_members=args.save_members, argv=_argv(),
        val_fraction=args.val_fraction, confirm=not args.yes, cpus_per_trial=args.cpus_per_trial,
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


def _member_store(args) -> bool | str:
    """--member-store DIR (a shared store), --no-member-store (none), or the results directory's own."""
    if args.no_member_store and args.member_store:
        raise ConfigError("--member-store and --no-member-store contradict each other; give one")
    return False if args.no_member_store else (args.member_store or True)


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
        member_store=_member_store(args),
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
        from tuneall.core.progress import axes_text

        recipe = "".join(f" {t}" for t in axes_text(b, front.attrs.get("axes") or ()))  # lr etc. where they varied
        print(f"\nBest allocation: {b['family']} width {b['width']:g} depth {int(b['depth'])} k={int(b['k'])}{recipe} "
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
        seeds=args.seeds, rules=args.rules, reuse=not args.no_reuse, member_store=_member_store(args),
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, members=args.members, amp=args.amp, argv=_argv(),
        verbose=args.verbose, data_dir=args.data_dir, concurrency=args.concurrency, name=args.name,
        storage_path=args.storage_path, address=args.address, num_cpus=args.num_cpus, seed=args.seed,
        max_failures=args.max_failures, executor=args.executor, val_fraction=args.val_fraction,
    )
    from tuneall.rundir.storage import display

    print(f"Summary: {display(out)}/summary.md")
    return 0

