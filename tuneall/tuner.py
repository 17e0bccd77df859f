"""``tuneall search``: Optuna (through Ray Tune's ``OptunaSearch``) over a search space, run by :mod:`tuneall.runner`.

Every trial goes through the trial factory (:func:`tuneall.planning.plan_point`) inside the trial: an infeasible
point is reported with status ``infeasible`` and told to Optuna as a constraint violation, never raised. Finished
trials go to the journal the moment the driver learns of them; the trials table, frontier, figures and summary are
written from it by :mod:`tuneall.search_report`, and the directory's state last.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tuneall import journal
from tuneall import results as R
from tuneall.budget import Budget
from tuneall.config import DEFAULT_OBJECTIVE, SEARCHERS, check_rule
from tuneall.errors import ConfigError
from tuneall.factory import Infeasible
from tuneall.runner import RunOptions, TrialContext
from tuneall.space import SearchSpace

# Fields that say where and how fast a search runs, not what its trials compute: a resume may change them.
OPERATIONAL = ("name", "storage_path", "address", "num_cpus", "dashboard", "max_failures", "concurrency", "trials",
               "resume", "study_storage", "data_dir", "executor")


@dataclass(frozen=True, kw_only=True)
class SearchConfig(RunOptions):
    budget: Budget
    space: SearchSpace
    searcher: str = "tpe"
    trials: int = 20  # ignored by grid search, which runs every feasible point
    rule: str = "mean"  # ensemble combination
    objectives: tuple[tuple[str, str], ...] = ((DEFAULT_OBJECTIVE, "max"),)
    resume: bool = False  # continue the search in an existing results directory
    study_storage: str | None = None  # Optuna RDB URL (e.g. sqlite:///study.db); default: a journal file in the dir

    def __post_init__(self):
        super().__post_init__()
        if self.searcher not in SEARCHERS:
            raise ConfigError(f"unknown searcher {self.searcher!r}; valid: {', '.join(SEARCHERS)}")
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise ConfigError(f"trials must be an integer >= 1, but got {self.trials!r}")
        check_rule(self.rule)
        if self.searcher == "nsga2" and len(self.objectives) < 2:
            raise ConfigError("searcher 'nsga2' is multi-objective: give at least two objectives")
        if self.executor != "ray":
            raise ConfigError("a search runs its trials as Ray Tune trials: executor must be 'ray'")

    @property
    def metric(self) -> list[str]:
        return [m for m, _ in self.objectives]

    @property
    def mode(self) -> list[str]:
        return [d for _, d in self.objectives]

    def default_name(self) -> str:
        return f"{self.dataset_label}-{self.budget.value:.3g}-{self.space.name}-{self.searcher}"

    def to_json(self) -> dict:
        """The config as ``tuneall.json`` records it (the space as its name, YAML and resolved axes)."""
        conf = json.loads(json.dumps(asdict(self), default=str))
        conf["space"] = {"name": self.space.name, "yaml": self.space.source,
                         "resolved": json.loads(json.dumps(asdict(self.space), default=str))}
        return conf


def _worst(mode: str) -> float:
    # A finite stand-in for "no result": Optuna learns the point is bad; the constraint marks it infeasible.
    return 0.0 if mode == "max" else 1e30


def trial_metrics(config: dict, ctx: TrialContext, data) -> dict:
    """The search's job: one trial from its sampled ``config``, as the flat metrics reported to Ray Tune."""
    from tuneall.data import with_fraction
    from tuneall.planning import plan_point
    from tuneall.runner import ray_member_trainer
    from tuneall.trial import run_trial, select_trainer

    point = config.get("point", config)
    repeat = _repeat_of(point, ctx.results_dir)
    if repeat is not None:
        return repeat
    res = ctx.resources
    base = {"family": point["family"], "width": point["width"], "k": point["k"]}
    try:
        plan = plan_point(point, ctx.budget, data.info, repeats=ctx.seeds, base_seed=ctx.seed)
    except (Infeasible, ConfigError) as e:
        return {**base, "status": "infeasible", "reason": str(e), "constraint": 1.0,
                **{m: _worst(d) for m, d in ctx.objectives}}
    plan = replace(plan, train=ctx.train_config(plan.train))
    trial_data = with_fraction(data, plan.allocation.data_fraction)
    trainer = ray_member_trainer(res, ctx.families) if res.parallel_members else select_trainer(res.members, res.amp)
    result = run_trial(plan, trial_data, rule=ctx.rules[0], trainer=trainer)
    out = {**plan.row(), **result.metrics(), "repeats_json": json.dumps(result.repeats),
           "curve_json": json.dumps(result.curve),
           "constraint": 1.0 if result.status == "diverged" else 0.0}
    for m, d in ctx.objectives:  # a diverged trial still reports real, finite values
        if not math.isfinite(out.get(m, float("nan"))):
            out[m] = _worst(d)
    return out


def _repeat_of(point: dict, results_dir: str | None) -> dict | None:
    """The metrics of a finished trial of the same point in this search's journal, or None.

    Training is deterministic in (point, seeds), so a point the sampler proposes again (TPE does, in small discrete
    spaces) is answered from the first trial instead of being trained again; the row says ``repeat_of``. Where the
    journal is not readable (a worker on another machine without the storage path) the point is simply trained.
    """
    if not results_dir or not (Path(results_dir) / R.JOURNAL).exists():
        return None
    from ray.tune.result import AUTO_RESULT_KEYS, DEBUG_METRICS

    skip = {*AUTO_RESULT_KEYS, *DEBUG_METRICS, "done", "experiment_tag", "should_checkpoint", "node_id"}
    key = journal.point_key(point)
    for rec in journal.read(results_dir):
        m = rec.get("metrics") or {}
        if m.get("status") in ("ok", "diverged") and journal.point_key(rec.get("config") or {}) == key:
            return {**{k: v for k, v in m.items() if k not in skip}, "repeat_of": rec["trial_id"]}
    return None


def _make_searcher(cfg: SearchConfig, space_fn, study_storage=None):
    import optuna

    from tuneall._optuna import ConstrainedOptunaSearch

    if cfg.searcher == "random":
        sampler = optuna.samplers.RandomSampler(seed=cfg.seed)
    elif cfg.searcher == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=cfg.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=cfg.seed)
    metric, mode = (cfg.metric, cfg.mode) if len(cfg.objectives) > 1 else (cfg.metric[0], cfg.mode[0])
    return ConstrainedOptunaSearch(space=space_fn, metric=metric, mode=mode, sampler=sampler, storage=study_storage,
                                   study_name=cfg.run_name)


def _check_resumable(cfg: SearchConfig, out: Path) -> dict:
    """The directory's ``tuneall.json`` if ``cfg`` is the search that made it; else ConfigError naming the field."""
    meta = R.read_meta(out)
    if not meta:
        raise ConfigError(f"{out} is not a tuneall search directory (no {R.META}); refusing to touch it")
    old, new = meta["config"], cfg.to_json()
    if isinstance(old.get("space"), dict) and "resolved" not in old["space"]:
        new["space"].pop("resolved")  # made before resolved spaces were recorded: compare the YAML
    R.check_same_run(out, old, new, ignore=OPERATIONAL)
    return meta


def run_search(cfg: SearchConfig, argv: list[str] | None = None, verbose: int = 1):
    """Run (or with ``cfg.resume`` continue) the search and write the results directory; returns the frontier."""
    from tuneall.data import dataset_info, load_dataset
    from tuneall.planning import plan_space
    from tuneall.runner import check_ray_options, ray_session

    out = cfg.results_dir
    R.check_new(out, cfg.resume)
    old_meta = _check_resumable(cfg, out) if cfg.resume else None
    # Everything a user can get wrong is checked before Ray starts or anything is written.
    info = dataset_info(cfg.dataset, cfg.val_fraction)  # user data: loaded (once) and checked here
    feasible, _ = plan_space(cfg.space, cfg.budget, info)  # raises with the smallest feasible budget
    storage = _study_storage(cfg, out)
    check_ray_options(cfg)
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction)
    with ray_session(cfg):
        return _fit(cfg, data, feasible, out, argv, verbose, old_meta, storage)


def _study_storage(cfg: SearchConfig, out: Path):
    """Optuna storage: ``study_storage`` URL, else a journal file in the results directory (survives a kill).
    Returns a factory, so that nothing is created before the run starts."""
    if cfg.study_storage:
        import optuna

        try:
            storage = optuna.storages.RDBStorage(cfg.study_storage)
        except Exception as e:  # noqa: BLE001 - any URL or driver problem is the user's to fix
            raise ConfigError(f"study storage {cfg.study_storage!r} is not usable: {str(e).splitlines()[0]}") \
                from None
        return lambda: storage

    def journal_storage():
        import optuna
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(out / R.OPTUNA_JOURNAL)))

    return journal_storage


def _requeue_unfinished(searcher, finished_keys: set) -> int:
    """Optuna trials left RUNNING by a killed driver: mark them failed and enqueue their points to run again."""
    import optuna

    study = searcher._ot_study
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        if journal.point_key(t.params) not in finished_keys:
            study.enqueue_trial(t.params, skip_if_exists=False)
            n += 1
    return n


def _context(cfg: SearchConfig, out: Path) -> TrialContext:
    from tuneall.runner import ship_families

    return TrialContext(job=trial_metrics, resources=cfg.resources, seeds=cfg.seeds, seed=cfg.seed,
                        rules=(cfg.rule,), objectives=cfg.objectives, budget=cfg.budget, unit=cfg.budget.unit,
                        min_steps=cfg.budget.min_steps, results_dir=str(out), families=ship_families())


def _fit(cfg: SearchConfig, data, feasible, out: Path, argv, verbose, old_meta, storage):
    from ray import tune

    from tuneall._callbacks import JournalCallback
    from tuneall.planning import DefineByRun, plan_point
    from tuneall.search_report import build_report, write_trials_table
    from tuneall.runner import check_fits, concurrency, with_trial_resources
    from tuneall.space import grid as space_grid

    res = cfg.resources
    check_fits(res.bundles(int(feasible["k"].max())))  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    meta = {**R.provenance(cfg.to_json(), argv), "data": R.data_facts(data.info)}
    if old_meta:  # keep the command that started the search; record the resumes
        meta = {**old_meta, "resumes": [*old_meta.get("resumes", []), {"command": meta["command"],
                                                                       "at": meta["created"]}]}
    meta = R.write_meta(out, meta, "running")
    done = journal.read(out)
    done_keys = {journal.point_key(r["config"]) for r in done}
    # With parallel members a trial's placement group has one bundle per member, so it depends on the sampled k.
    trainable = with_trial_resources(_context(cfg, out), data,
                                     lambda config: res.bundles(int(config.get("point", config).get("k", 1))))
    at_once = concurrency(cfg, sum(b.get("CPU", 0) for b in res.bundles(int(feasible["k"].min()))))
    searcher = None
    # reuse_actors: a finished trial's process runs the next one, so torch, tuneall and the dataset are loaded once
    # per process, not once per trial (measured: a 4 s gap between trials without it; benchmarks/search_efficiency.py)
    if cfg.searcher == "grid":
        points = [p for p in space_grid(cfg.space) if _is_feasible(p, cfg, data.info, plan_point)]
        todo = [p for p in points if journal.point_key(p) not in done_keys]
        total = len(points)
        param_space = {"point": tune.grid_search(todo)}
        tune_config = tune.TuneConfig(num_samples=1, max_concurrent_trials=at_once, reuse_actors=True)
    else:
        searcher = _make_searcher(cfg, DefineByRun(cfg.space, cfg.budget, data.info), storage())
        requeued = _requeue_unfinished(searcher, done_keys) if cfg.resume else 0
        todo, total = range(max(0, cfg.trials - len(done))), cfg.trials
        param_space = None
        tune_config = tune.TuneConfig(search_alg=searcher, num_samples=max(1, len(todo)),
                                      max_concurrent_trials=at_once, reuse_actors=True)
        if cfg.resume:
            print(f"tuneall: resuming: {len(done)} finished trial(s) kept, {requeued} interrupted one(s) run again, "
                  f"{len(todo)} to go", flush=True)
    run_config = tune.RunConfig(
        name=cfg.run_name, storage_path=str(out.parent), verbose=verbose, callbacks=[JournalCallback(str(out))],
        failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
    )
    print(f"tuneall: searching {cfg.space.name!r} on {cfg.dataset} at C = {cfg.budget}: {cfg.searcher}, "
          f"{total} trials, {at_once} at a time, {cfg.seeds} seed(s) each -> {out}", flush=True)
    if len(todo) and cfg.address is None and res.gpus == 0:  # trials run on this machine's CPUs: time a few steps
        _print_estimate(feasible, data.info, cfg, len(todo), at_once)
    if len(todo):
        tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config).fit()
    records = journal.read(out)
    complete = len(records) >= total
    write_trials_table(records, out)
    if searcher is not None:
        searcher._ot_study.trials_dataframe().to_csv(out / R.OPTUNA_TRIALS, index=False)
    front = build_report(out, state="complete" if complete else "interrupted")
    R.write_meta(out, meta, "complete" if complete else "interrupted")  # last: a complete directory has its report
    front.attrs["complete"] = complete
    if not complete:
        print(f"tuneall: search interrupted after {len(records)} of {total} trials; continue it with: "
              f"tuneall resume {out}", flush=True)
    return front


def _print_estimate(feasible, info, cfg: SearchConfig, trials: int, concurrency: int) -> None:
    from tuneall.estimate import announce, trial_seconds

    announce(lambda: trial_seconds(feasible, info, cfg.seeds, cfg.resources.threads),
             lambda per_trial: per_trial.mean() * trials / concurrency,
             f"{trials} trial(s), {concurrency} at a time, if they resemble the average feasible point")


def _is_feasible(point: dict, cfg: SearchConfig, info, plan_point) -> bool:
    try:
        plan_point(point, cfg.budget, info)
        return True
    except (Infeasible, ConfigError):
        return False


def config_from_dir(results_dir: str | Path, **overrides) -> SearchConfig:
    """The SearchConfig a results directory was made with (for ``tuneall resume DIR``)."""
    import yaml

    from tuneall.config import Resources
    from tuneall.space import parse_space

    out = Path(results_dir).expanduser().resolve()
    if R.kind(out) != "search":
        raise ConfigError(f"{out} is a sweep; sweeps cannot be resumed (run the sweep again with another name)")
    meta = R.read_meta(out)
    if not meta:
        raise ConfigError(f"{out} is not a tuneall search directory (no {R.META})")
    conf = dict(meta["config"])
    try:
        space_src = conf.pop("space")["yaml"]
        conf.update(
            budget=Budget(**conf["budget"]),
            space=parse_space(yaml.safe_load(space_src), source=space_src),
            objectives=tuple(tuple(o) for o in conf["objectives"]),
            resources=Resources(**conf["resources"]),
        )
        if "resolved" in (meta["config"]["space"] or {}):  # fixed axes (e.g. an --lr) as the search ran them
            from tuneall.space import with_fixed

            fixed = {k: v["values"][0] for k, v in meta["config"]["space"]["resolved"]["axes"].items()
                     if isinstance(v, dict) and len(v.get("values") or ()) == 1}
            conf["space"] = with_fixed(conf["space"], **fixed)
        conf.update(name=out.name, storage_path=str(out.parent), resume=True, **overrides)
        return SearchConfig(**{k: v for k, v in conf.items() if k in SearchConfig.__dataclass_fields__})
    except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as e:
        raise ConfigError(f"{out / R.META} is damaged ({type(e).__name__}: {e}); it cannot be resumed") from None


__all__ = ["SearchConfig", "run_search", "config_from_dir", "trial_metrics", "SEARCHERS", "OPERATIONAL"]
