"""The Python API: every verb of the CLI (plan, design, train, search, resume, sweep, report) is one function here,
and the CLI calls exactly these. Heavy libraries (torch, Ray, pandas) are imported inside the functions that need
them, so ``import tuneall`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from tuneall.core.budget import DEFAULT_MIN_STEPS, DEFAULT_UNIT, Budget
from tuneall.core.call import python_call, value_keywords
from tuneall.core.config import DEFAULT_OBJECTIVE, Recipe, Resources, SpaceAxes, TrainConfig, check_rule, parse_objectives
from tuneall.core.errors import ConfigError
from tuneall.training import sanity
from tuneall.data.registry import DEFAULT_VAL_FRACTION
from tuneall.rundir.storage import display  # a results directory as the user named it: its URI, or its path

if TYPE_CHECKING:
    import pandas as pd

    from tuneall.planning.space import SearchSpace
    from tuneall.training.trial import TrialResult


@value_keywords
def make_space(space: "SearchSpace | str | None" = None, family: str | None = None,
               widths: Sequence[float] | None = None, depths: Sequence[int] | None = None,
               k: Sequence[int] | None = None, recipe: Recipe = Recipe()) -> "SearchSpace":
    """A search space: a packaged name or YAML path (default ``paper``), or an ad-hoc one from a family (a registered
    name or an import path such as ``mypkg.nets:make_mlp``) and lists of widths, depths and ensemble sizes; recipe
    settings given here (``lr=...``, ``optimizer=...``) are fixed in it. A user family without ``widths`` uses its
    own width grid."""
    from tuneall.planning.space import build_space

    return build_space(space, SpaceAxes(family, widths, depths, k), recipe)


def plan(
    budget: float | str,
    unit: str = DEFAULT_UNIT,
    min_steps: int = DEFAULT_MIN_STEPS,
    dataset: str = "digits",
    space: "SearchSpace | str | None" = None,
    estimate: bool = False, seeds: int = 3, cpus_per_trial: float = 1.0, family: str | None = None,
    widths: Sequence[float] | None = None, depths: Sequence[int] | None = None, k: Sequence[int] | None = None,
) -> "tuple[pd.DataFrame, pd.DataFrame]":
    """Feasible allocations of ``space`` (or of ``family``/``widths``/``depths``/``k`` as :func:`make_space` builds
    them, like the CLI's flags) under the budget, and the infeasible ones with their reasons.

    Loads no data: dataset shapes are known statically. ``estimate``: time a few steps of each architecture on this
    machine (synthetic inputs of the dataset's shape) and add each allocation's training time for ``seeds`` repeats
    with ``cpus_per_trial`` threads (columns ``est_train_s``, ``est_train``).
    """
    from tuneall.planning.points import plan_space

    b = Budget(budget, unit, min_steps)
    sp = make_space(space, family=family, widths=widths, depths=depths, k=k)
    if estimate and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ConfigError(f"estimate needs seeds >= 1, but got seeds={seeds!r}")
    threads = Resources(cpus=cpus_per_trial).threads
    feasible, infeasible = plan_space(sp, b, dataset)
    if estimate:
        from tuneall.data import dataset_info
        from tuneall.training.estimate import fmt_seconds, trial_seconds

        feasible["est_train_s"] = trial_seconds(feasible, dataset_info(dataset), seeds, threads)
        feasible["est_train"] = feasible["est_train_s"].map(fmt_seconds)
        feasible.attrs.update(seeds=seeds, threads=threads)
    return feasible, infeasible


def design(
    family: str,
    width: float,
    depth: int | None,
    k: int,
    dataset: str = "cifar10",
    budget: float | str | None = None,
    unit: str = DEFAULT_UNIT,
    min_steps: int = DEFAULT_MIN_STEPS,
) -> "pd.DataFrame":
    """Seed 001's single network, deq and weq ensembles side by side (with steps per member if a budget is given)."""
    import pandas as pd

    from tuneall.data import dataset_info
    from tuneall.models import Architecture
    from tuneall.planning.design_classes import design_classes
    from tuneall.planning.factory import Allocation, Infeasible, make_trial_plan

    info = dataset_info(dataset)
    classes = design_classes(Architecture.for_data(family, width, depth, info), k)
    single = classes[0].total_params
    rows = []
    for c in classes:
        row = {"class": c.name, "family": c.family, "width": c.width, "depth": c.depth, "k": c.k,
               "params_per_member": c.params_per_member, "total_params": c.total_params,
               "fraction_of_single": round(c.total_params / single, 4)}
        if budget is not None:
            try:
                p = make_trial_plan(Allocation(c.family, c.width, c.depth, c.k), Budget(budget, unit, min_steps), info)
                row["steps"] = p.steps
            except Infeasible:
                row["steps"] = "infeasible"
        rows.append(row)
    return pd.DataFrame(rows)


@value_keywords
def train(
    dataset: str = "digits",
    budget: float | str = 3e7,
    unit: str = DEFAULT_UNIT,
    min_steps: int = DEFAULT_MIN_STEPS,
    family: str = "cnn3",
    width: float = 1.0,
    depth: int | None = None,
    k: int = 1,
    data_fraction: float = 1.0,
    seeds: int = 3,
    rule: str = "mean",
    recipe: Recipe = Recipe(),
    data_dir: str | None = None,
    device: str = "cpu",
    members: str = "sequential",
    amp: bool = False,
    progress=None,
    storage_path: str | None = None,
    name: str | None = None,
    save_members: str = "best",
    argv: list[str] | None = None,
    val_fraction: float | None = None,
    confirm: bool = True,
    cpus_per_trial: float = 1.0,
) -> "TrialResult":
    """Train one allocation under the budget (k members x ``seeds`` repeats) and evaluate it on validation and test.
    ``family`` may be an import path to a model factory; ``dataset`` an import path to a data loader.

    With ``storage_path`` the run is written to ``storage_path/name`` (default name from the settings):
    ``train.json`` (plan, metrics, members, command, versions) and, unless ``save_members='none'``, the members'
    weights, which :func:`load_ensemble` reads back (``result.attrs['results_dir']``). ``val_fraction``: the share
    of a packaged dataset's training split held out as validation (default 10 %; user data carry their own).
    ``confirm``: ask before a run estimated above an hour on a terminal (never under CI).
    ``cpus_per_trial``: torch threads (default 1, as search and sweep: one allocation, one number)."""
    argv = argv if argv is not None else python_call("train", train, locals())  # from Python: the call itself
    from tuneall.data import check_batch_sizes, dataset_info, load_dataset
    from tuneall.planning.factory import Allocation, make_trial_plan
    from tuneall.models import Architecture, check_family, resolve_family
    from tuneall.training.trainers import select_trainer

    check_rule(rule)
    cfg = TrainConfig.from_recipe(recipe, device=device)
    family = resolve_family(family)
    b = Budget(budget, unit, min_steps)
    threads = Resources(cpus=cpus_per_trial, members=members, amp=amp).threads  # validates before any data loads
    trainer = select_trainer(members, amp)
    vf = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
    info = dataset_info(dataset, vf)
    sanity.check_val_fraction(dataset, val_fraction)
    check_family(Architecture.for_data(family, width, depth, info))
    trial_plan = make_trial_plan(Allocation(family, width, depth, k, data_fraction), b, info, cfg, repeats=seeds)
    check_batch_sizes([{"batch_size": cfg.batch_size, "data_fraction": data_fraction}], info)  # before the estimate
    out = None
    if storage_path is not None:
        from tuneall.rundir import results as R

        if save_members not in ("all", "best", "none"):
            raise ConfigError(f"save_members must be one of all, best, none, but got {save_members!r}")
        label = dataset.rsplit("/", 1)[-1].replace(".py:", "-").replace(":", "-")  # an import path's file and name
        out = R.results_path(storage_path, name or f"train-{label}-{b.value:.3g}-{family}-w{width:g}-k{k}")
        R.storage.check_uri(storage_path)  # a URI: scheme, bucket and credentials, before training
        if R.storage.exists(out):
            raise ConfigError(f"results directory {R.storage.display(out)} already exists; pass another name (or "
                              "storage_path)")
    sanity.before_training(trial_plan, info, seeds, confirm, verbose=progress is not None)
    data = load_dataset(dataset, data_dir=data_dir, data_fraction=data_fraction, val_fraction=vf)
    from tuneall.training.ensemble import save_train_dir
    from tuneall.training.progress import run_with_progress

    result = run_with_progress(trial_plan, data, dataset, b, threads, progress, rule=rule, trainer=trainer)
    if out is not None:
        save_train_dir(out, result, data, rule, save_members != "none", argv, threads)
        R.storage.push(out)  # a URI: mirrored to it, and named by it
        result.attrs["results_dir"] = R.storage.display(out)
    return result


@value_keywords
def search(
    budget: float | str,
    unit: str = DEFAULT_UNIT,
    min_steps: int = DEFAULT_MIN_STEPS,
    dataset: str = "digits",
    data_dir: str | None = None,
    space: "SearchSpace | str | None" = None,
    searcher: str = "tpe",
    trials: int = 20,
    concurrency: int | None = None,
    seeds: int = 3,
    rule: str = "mean",
    objectives: str | tuple = DEFAULT_OBJECTIVE,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    parallel_members: bool = False,
    members: str = "sequential",
    amp: bool = False,
    name: str | None = None,
    storage_path: str = "results",
    address: str | None = None,
    num_cpus: int | None = None,
    dashboard: bool = False,
    seed: int = 0,
    max_failures: int = 0,
    resume: bool = False,
    study_storage: str | None = None,
    recipe: Recipe = Recipe(),
    axes: SpaceAxes = SpaceAxes(),
    data=None,
    val_fraction: float | None = None,
    time_budget: float | None = None,
    save_members: str = "best",
    member_store: bool | str = True,
    dry_run: bool = False,
    confirm: bool = True,
    argv: list[str] | None = None,
    verbose: int = 1,
) -> "pd.DataFrame":
    """Search the best allocation for the budget with Ray Tune + Optuna; returns the frontier (chosen on validation).

    ``model``: a family name or a factory ``fn(width, depth, input_shape, num_classes)`` (registered for you) or its
    import path, with ``widths``/``depths``/``k`` (default: the family's width grid). ``data``: your own data
    (tensors, a dict, a torch Dataset, a callable, or an import path; :mod:`tuneall.data.user`), registered under
    ``dataset`` (default name "user"). ``objectives``: what the sampler optimises and the frontier is drawn on
    (default: validation ensemble accuracy; test metrics are reported beside it, never used to choose).

    The results directory (``frontier.attrs['results_dir']``) holds the trials table, frontier, figures, summary,
    and (``save_members``: 'best', 'all' or 'none') the members' weights, read back by :func:`load_ensemble`.
    ``time_budget``: seconds of wall clock; no trial is started that would end after it, and the report covers the
    trials that ran. ``member_store``: answer members from the results directory's member store and record what is
    trained there (exact reuse: a grid trains each member once); a directory: a store shared with other searches and
    sweeps of the same data and recipe (:mod:`tuneall.store.shared`). ``dry_run``: print the plan and the time estimate and return the feasible allocations, training
    and writing nothing. ``confirm``: ask before a search estimated above an hour when stdin is a terminal (never
    under CI); ``verbose``: 0 errors only, 1 tuneall's lines, 2 also Ray's table of trials, 3 also Ray's results.
    """
    argv = argv if argv is not None else python_call("search", search, locals())  # from Python: the call itself
    from tuneall.data import dataset_info
    from tuneall.planning.space import build_space
    from tuneall.tuning.driver import SearchConfig, run_search

    check_rule(rule)
    from tuneall.data.user import use_data

    dataset = use_data(data, dataset, val_fraction)
    dataset_info(dataset)  # unknown dataset: fail before anything else
    sanity.check_val_fraction(dataset, val_fraction)  # in-memory data were checked as they were registered
    cfg = SearchConfig(
        budget=Budget(budget, unit, min_steps),
        space=build_space(space, axes, recipe), dataset=dataset,
        val_fraction=val_fraction if val_fraction is not None else DEFAULT_VAL_FRACTION,
        data_dir=data_dir, searcher=searcher, trials=trials, concurrency=concurrency, seeds=seeds, rule=rule,
        objectives=parse_objectives(objectives),
        resources=Resources(cpus_per_trial, gpus_per_trial, parallel_members, members, amp), name=name,
        storage_path=storage_path, address=address, num_cpus=num_cpus, dashboard=dashboard, seed=seed,
        max_failures=max_failures, resume=resume, study_storage=study_storage, time_budget_s=time_budget,
        save_members=save_members, member_store=member_store,
    )
    front = run_search(cfg, argv=argv, verbose=verbose, dry_run=dry_run, confirm=confirm)
    front.attrs["results_dir"] = display(cfg.results_dir)
    return front


def resume(results_dir: str, address: str | None = None, num_cpus: int | None = None, verbose: int = 1,
           argv: list[str] | None = None) -> "pd.DataFrame":
    """Continue an interrupted search from its results directory: finished trials are kept, never re-run."""
    from tuneall.rundir.results import warn_other_cpu
    from tuneall.tuning.driver import config_from_dir, run_search

    cfg = config_from_dir(results_dir, address=address, num_cpus=num_cpus)
    warn_other_cpu(results_dir)  # one line when resumed on another CPU model or instruction set
    front = run_search(cfg, argv=argv, verbose=verbose)
    front.attrs["results_dir"] = display(cfg.results_dir)
    return front


@value_keywords
def sweep(
    budgets,
    dataset: str = "digits",
    space: "SearchSpace | str | None" = None,
    points: Sequence[dict] | None = None,
    unit: str = DEFAULT_UNIT,
    min_steps: int = DEFAULT_MIN_STEPS,
    seeds: int = 3,
    rules: str | Sequence[str] = ("mean",),
    reuse: bool = True,
    member_store: bool | str = True,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    members: str = "sequential",
    amp: bool = False,
    recipe: Recipe = Recipe(),
    axes: SpaceAxes = SpaceAxes(),
    data=None,
    val_fraction: float | None = None,
    argv: list[str] | None = None,
    verbose: int = 1,
    **options,
) -> Path:
    """The allocation study over several budgets (``'1e6,3e6,1e7'``, ``'LOW:HIGH:N'`` or a list), each allocation
    trained once at its largest budget (anytime reuse; with ``member_store`` each member of an architecture once for
    every k and budget, exactly); returns the results directory. ``options``: the run options
    of :class:`tuneall.runner.RunOptions` (name, storage_path, address, concurrency, executor, ...)."""
    argv = argv if argv is not None else python_call("sweep", sweep, locals())  # from Python: the call itself
    from tuneall.data.user import use_data
    from tuneall.planning.space import build_space
    from tuneall.sweeping.driver import SweepConfig, parse_budgets, run_sweep

    dataset = use_data(data, dataset, val_fraction)
    if val_fraction is not None:
        sanity.check_val_fraction(dataset, val_fraction)  # in-memory data were checked as they were registered
        options["val_fraction"] = val_fraction
    if points is None:
        sp, pts = build_space(space, axes, recipe), None
    else:
        sp, pts = None, tuple({**p, **recipe.given()} for p in points)
    rules = tuple(r.strip() for r in rules.split(",")) if isinstance(rules, str) else tuple(rules)
    cfg = SweepConfig(budgets=parse_budgets(budgets), space=sp, points=pts, unit=unit, min_steps=min_steps,
                      dataset=dataset, seeds=seeds, rules=rules, reuse=reuse, member_store=member_store,
                      resources=Resources(cpus_per_trial, gpus_per_trial, members=members, amp=amp), **options)
    return run_sweep(cfg, argv=argv, verbose=verbose)


def report(results_dir: str | Path) -> dict:
    """Rebuild a results directory's report from disk, without training: a search's frontier, figures and summary,
    or a sweep's cross-budget report. Returns ``{"kind", "results_dir", "frontier" (searches), "sweep" (sweeps)}``."""
    from tuneall.reporting.search_report import build_report
    from tuneall.rundir import results as R
    from tuneall.sweeping.report import build_sweep_report

    out = R.resolve_dir(results_dir)  # a URI: its working copy, pulled
    kind = R.kind(out)
    with R.owned(out, existing=True):  # never while a search or another report writes the directory
        if kind != "sweep":
            return {"kind": kind, "results_dir": display(out), "frontier": build_report(out)}
        if not (out / R.CELLS).exists():
            raise ConfigError(f"{out} is a sweep that never finished (no {R.CELLS}); run it again")
        build_sweep_report(out)
        return {"kind": kind, "results_dir": display(out),
                "sweep": R.read_json(out / R.SWEEP_META, required=("sweep",))["sweep"]}


def load_ensemble(path: str | Path, repeat: int = 0):
    """The saved members of a search's chosen allocation (its results directory), of one trial
    (``members/<trial_id>``) or of a ``tuneall train`` directory, as a predictor (:class:`tuneall.training.ensemble.Ensemble`:
    ``predict``, ``predict_log_proba``, ``evaluate``). ``repeat``: which seed's ensemble."""
    from tuneall.rundir.results import resolve_dir
    from tuneall.training.ensemble import load_ensemble as load

    return load(resolve_dir(path, skip=("member_store/",)), repeat=repeat)  # a URI: members fetched, not the store


__all__ = ["plan", "design", "train", "search", "resume", "sweep", "report", "make_space", "load_ensemble"]
