"""The Python API; the CLI calls exactly these functions."""

from __future__ import annotations

import pandas as pd

from tuneall.budget import DEFAULT_MIN_STEPS, DEFAULT_UNIT, Budget
from tuneall.data import dataset_info, load_dataset
from tuneall.factory import Allocation, Resources, make_trial_plan
from tuneall.planning import plan_space
from tuneall.space import SearchSpace, load_space
from tuneall.training import TrainConfig
from tuneall.trial import TrialResult, run_trial, select_trainer


def plan(
    budget: float | str,
    unit: str = DEFAULT_UNIT,
    min_steps: int = DEFAULT_MIN_STEPS,
    dataset: str = "digits",
    space: SearchSpace | str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feasible allocations of ``space`` under the budget, and the infeasible ones with their reasons.

    Loads no data: dataset shapes are known statically.
    """
    b = Budget(budget, unit, min_steps)
    sp = space if isinstance(space, SearchSpace) else load_space(space)
    return plan_space(sp, b, dataset)


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
    lr: float | None = None,
    momentum: float | None = None,
    batch_size: int | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    members: str = "sequential",
    amp: bool = False,
    progress=None,
) -> TrialResult:
    """Train one allocation under the budget (k members x ``seeds`` repeats) and evaluate it."""
    from tuneall.metrics import COMBINE_RULES
    from tuneall.errors import ConfigError

    if rule not in COMBINE_RULES:
        raise ConfigError(f"unknown combination rule {rule!r}; valid: {', '.join(COMBINE_RULES)}")
    defaults = TrainConfig()
    cfg = TrainConfig(
        lr=defaults.lr if lr is None else lr,
        momentum=defaults.momentum if momentum is None else momentum,
        batch_size=defaults.batch_size if batch_size is None else batch_size,
        device=device,
    )
    b = Budget(budget, unit, min_steps)
    Resources(members=members, amp=amp)  # validates: a bad --members is a ConfigError before any data loads
    trainer = select_trainer(members, amp)
    info = dataset_info(dataset)
    trial_plan = make_trial_plan(Allocation(family, width, depth, k, data_fraction), b, info, cfg, repeats=seeds)
    data = load_dataset(dataset, data_dir=data_dir, data_fraction=data_fraction)
    return run_trial(trial_plan, data, rule=rule, progress=progress, trainer=trainer)


def search(
    budget: float | str,
    unit: str = DEFAULT_UNIT,
    min_steps: int = DEFAULT_MIN_STEPS,
    dataset: str = "digits",
    data_dir: str | None = None,
    space: SearchSpace | str | None = None,
    searcher: str = "tpe",
    trials: int = 20,
    concurrency: int | None = None,
    seeds: int = 3,
    rule: str = "mean",
    objectives: str | tuple = "ensemble_acc_mean",
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
    lr: float | None = None,
    momentum: float | None = None,
    batch_size: int | None = None,
    argv: list[str] | None = None,
    verbose: int = 1,
) -> pd.DataFrame:
    """Search the best allocation for the budget with Ray Tune + Optuna; returns the frontier.

    The results directory (``frontier.attrs['results_dir']``) holds the trials table, frontier, figures, summary.
    """
    from tuneall.errors import ConfigError
    from tuneall.metrics import COMBINE_RULES
    from tuneall.tuner import SearchConfig, parse_objectives, run_search
    from tuneall.space import with_fixed

    if rule not in COMBINE_RULES:
        raise ConfigError(f"unknown combination rule {rule!r}; valid: {', '.join(COMBINE_RULES)}")
    dataset_info(dataset)  # unknown dataset: fail before anything else
    sp = space if isinstance(space, SearchSpace) else load_space(space)
    fixed = {key: v for key, v in (("lr", lr), ("momentum", momentum), ("batch_size", batch_size)) if v is not None}
    cfg = SearchConfig(
        budget=Budget(budget, unit, min_steps), space=with_fixed(sp, **fixed), dataset=dataset, data_dir=data_dir,
        searcher=searcher, trials=trials, concurrency=concurrency, seeds=seeds, rule=rule,
        objectives=parse_objectives(objectives) if isinstance(objectives, str) else tuple(objectives),
        resources=Resources(cpus_per_trial, gpus_per_trial, parallel_members, members, amp), name=name,
        storage_path=storage_path,
        address=address, num_cpus=num_cpus, dashboard=dashboard, seed=seed, max_failures=max_failures,
        resume=resume, study_storage=study_storage,
    )
    front = run_search(cfg, argv=argv, verbose=verbose)
    front.attrs["results_dir"] = str(cfg.results_dir)
    return front


def design(
    family: str,
    width: float,
    depth: int | None,
    k: int,
    dataset: str = "cifar10",
    budget: float | str | None = None,
    unit: str = DEFAULT_UNIT,
    min_steps: int = DEFAULT_MIN_STEPS,
) -> pd.DataFrame:
    """Seed 001's single network, deq and weq ensembles side by side (with steps per member if a budget is given)."""
    from tuneall.design import design_classes
    from tuneall.factory import Infeasible

    info = dataset_info(dataset)
    classes = design_classes(family, width, depth, k, in_channels=info.in_channels, num_classes=info.num_classes,
                             spatial_dims=info.spatial_dims)
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


def resume(results_dir: str, address: str | None = None, num_cpus: int | None = None, verbose: int = 1) -> pd.DataFrame:
    """Continue an interrupted search from its results directory: finished trials are kept, never re-run."""
    from tuneall.tuner import config_from_dir, run_search

    cfg = config_from_dir(results_dir, address=address, num_cpus=num_cpus)
    front = run_search(cfg, verbose=verbose)
    front.attrs["results_dir"] = str(cfg.results_dir)
    return front
