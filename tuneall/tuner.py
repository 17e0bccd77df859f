"""``tuneall search``: the Ray Tune Tuner with Optuna (through ``OptunaSearch``) over a search space.

Every trial goes through the trial factory (:func:`tuneall.planning.plan_point`) inside the trainable: an infeasible
point is reported with status ``infeasible`` and told to Optuna as a constraint violation, never raised. The trials
table, frontier, figures and summary are written to the results directory by :mod:`tuneall.report`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tuneall import journal
from tuneall.budget import Budget
from tuneall.errors import ConfigError
from tuneall.factory import Infeasible, Resources
from tuneall.space import SearchSpace

SEARCHERS = ("tpe", "random", "grid", "nsga2")
# Trial-level metrics an objective may name, with the direction that is better.
OBJECTIVES = {
    "ensemble_acc_mean": "max", "ensemble_acc_worst": "max", "ensemble_nll_mean": "min", "ensemble_ece_mean": "min",
    "total_params": "min", "inference_flops": "min", "train_time_s": "min",
}
DEFAULT_OBJECTIVE = "ensemble_acc_mean"
HEARTBEAT_S = 60.0  # seconds between a search member's "step i/T" lines


@dataclass(frozen=True)
class SearchConfig:
    budget: Budget
    space: SearchSpace
    dataset: str = "digits"
    data_dir: str | None = None
    searcher: str = "tpe"
    trials: int = 20  # ignored by grid search, which runs every feasible point
    concurrency: int | None = None  # default: as many trials as the CPUs hold
    seeds: int = 3  # repeats of each allocation over seeds
    rule: str = "mean"  # ensemble combination
    objectives: tuple[tuple[str, str], ...] = ((DEFAULT_OBJECTIVE, "max"),)
    resources: Resources = field(default_factory=Resources)
    name: str | None = None
    storage_path: str = "results"
    address: str | None = None  # an existing Ray cluster; None starts a local Ray
    num_cpus: int | None = None  # CPUs of the local Ray (default: all)
    dashboard: bool = False
    seed: int = 0  # sampler seed and base seed of the members
    max_failures: int = 0
    resume: bool = False  # continue the search in an existing results directory
    study_storage: str | None = None  # Optuna RDB URL (e.g. sqlite:///study.db); default: a journal file in the dir

    def __post_init__(self):
        if self.searcher not in SEARCHERS:
            raise ConfigError(f"unknown searcher {self.searcher!r}; valid: {', '.join(SEARCHERS)}")
        for name in ("trials", "seeds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be an integer >= 1, but got {v!r}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, but got {self.concurrency!r}")
        if self.searcher == "nsga2" and len(self.objectives) < 2:
            raise ConfigError("searcher 'nsga2' is multi-objective: give at least two --objectives")

    @property
    def metric(self) -> list[str]:
        return [m for m, _ in self.objectives]

    @property
    def mode(self) -> list[str]:
        return [d for _, d in self.objectives]

    @property
    def run_name(self) -> str:
        return self.name or f"{self.dataset}-{self.budget.value:.3g}-{self.space.name}-{self.searcher}"

    @property
    def results_dir(self) -> Path:
        return Path(self.storage_path).expanduser().resolve() / self.run_name


def parse_objectives(text: str) -> tuple[tuple[str, str], ...]:
    """'ensemble_acc_mean,inference_flops' or 'a:max,b:min' -> ((metric, mode), ...)."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, mode = part.partition(":")
        if name not in OBJECTIVES:
            raise ConfigError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVES)}")
        mode = mode or OBJECTIVES[name]
        if mode not in ("min", "max"):
            raise ConfigError(f"objective {name!r}: mode must be min or max, got {mode!r}")
        out.append((name, mode))
    if not out:
        raise ConfigError("--objectives needs at least one metric")
    return tuple(out)


def _worst(mode: str) -> float:
    # A finite stand-in for "no result": Optuna learns the point is bad; the constraint marks it infeasible.
    return 0.0 if mode == "max" else 1e30


def trial_metrics(config: dict, ctx: dict, data) -> dict:
    """Run one trial from its sampled ``config`` and return the flat metrics reported to Ray Tune."""
    import torch

    from tuneall.planning import plan_point
    from tuneall.trial import run_trial, select_trainer

    point = config.get("point", config)
    repeat = _repeat_of(point, ctx.get("results_dir"))
    if repeat is not None:
        return repeat
    res: Resources = ctx["resources"]
    torch.set_num_threads(res.threads)  # one trial, its own CPUs: no oversubscription
    base = {"family": point["family"], "width": point["width"], "k": point["k"]}
    try:
        plan = plan_point(point, ctx["budget"], data.info, repeats=ctx["seeds"], base_seed=ctx["seed"],
                          resources=res)
    except (Infeasible, ConfigError) as e:
        return {**base, "status": "infeasible", "reason": str(e), "constraint": 1.0,
                **{m: _worst(d) for m, d in ctx["objectives"]}}
    # Members of a long trial say they are alive (Ray forwards a trial's output to the driver's terminal).
    plan = replace(plan, train=replace(plan.train, heartbeat_s=HEARTBEAT_S,
                                       device="cuda" if res.gpus > 0 else plan.train.device))
    from tuneall.data import with_fraction

    trial_data = with_fraction(data, plan.allocation.data_fraction)
    trainer = _ray_member_trainer(res) if res.parallel_members else select_trainer(res.members, res.amp)
    result = run_trial(plan, trial_data, rule=ctx["rule"], trainer=trainer)
    out = {**plan.row(), **result.metrics(), "repeats_json": json.dumps(result.repeats),
           "curve_json": json.dumps(result.curve),
           "constraint": 1.0 if result.status == "diverged" else 0.0}
    for m, d in ctx["objectives"]:  # a diverged trial still reports real, finite values
        if not math.isfinite(out.get(m, float("nan"))):
            out[m] = _worst(d)
    return out


def _repeat_of(point: dict, results_dir: str | None) -> dict | None:
    """The metrics of a finished trial of the same point in this search's journal, or None.

    Training is deterministic in (point, seeds), so a point the sampler proposes again (TPE does, in small discrete
    spaces) is answered from the first trial instead of being trained again; the row says ``repeat_of``. Where the
    journal is not readable (a worker on another machine without the storage path) the point is simply trained.
    """
    if not results_dir or not os.path.exists(os.path.join(results_dir, journal.JOURNAL)):
        return None
    from ray.tune.result import AUTO_RESULT_KEYS, DEBUG_METRICS

    skip = {*AUTO_RESULT_KEYS, *DEBUG_METRICS, "done", "experiment_tag", "should_checkpoint", "node_id"}
    key = journal.point_key(point)
    for rec in journal.read(results_dir):
        m = rec.get("metrics") or {}
        if m.get("status") in ("ok", "diverged") and journal.point_key(rec.get("config") or {}) == key:
            return {**{k: v for k, v in m.items() if k not in skip}, "repeat_of": rec["trial_id"]}
    return None


def _ray_member_trainer(res: Resources):
    """Train members as Ray tasks, member i in bundle i + 1 of the trial's placement group (parallel members)."""
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    def trainer(plan, data, progress=None, eval_steps=()):
        pg = ray.util.get_current_placement_group()
        data_ref = ray.put(data)
        task = ray.remote(_train_member_task)
        a = plan.allocation
        refs = [
            [task.options(num_cpus=res.cpus, num_gpus=res.gpus, scheduling_strategy=PlacementGroupSchedulingStrategy(
                pg, placement_group_bundle_index=i + 1)).remote(a.family, a.width, plan.depth, data_ref, plan.steps,
                                                                 seed, plan.train, res.cpus, eval_steps)
             for i, seed in enumerate(seeds)]
            for seeds in plan.seeds
        ]
        return [ray.get(r) for r in refs]

    return trainer


def _train_member_task(family, width, depth, data, steps, seed, train, cpus, eval_steps):
    import torch

    from tuneall.training import train_member

    torch.set_num_threads(max(1, int(cpus)))
    return train_member(family, width, depth, data, steps, seed, train, eval_steps)


def quiet_sigterm_exit() -> None:
    """In a trial process: do not print the SystemExit that Ray's SIGTERM handler raises at shutdown.

    Ray stops reused trial processes with SIGTERM when a search ends; its handler raises SystemExit wherever the
    interpreter is, and inside a weakref or finaliser callback Python reports that as "Exception ignored in ..."
    with a traceback: noise after a search whose results are all in. Every other unraisable error still prints.
    """
    if getattr(sys.unraisablehook, "tuneall", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable):
        if unraisable.exc_type is not SystemExit:
            previous(unraisable)

    hook.tuneall = True
    sys.unraisablehook = hook


def _trainable(config: dict, ctx: dict, data) -> None:
    import ray
    from ray import tune

    quiet_sigterm_exit()
    # The node a trial ran on goes into the trials table (multi-machine sweeps: which trials ran where).
    tune.report({**trial_metrics(config, ctx, data), "node_id": ray.get_runtime_context().get_node_id()})


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


def provenance(cfg: SearchConfig, argv: list[str] | None) -> dict:
    """What makes a results directory reproducible: resolved config, command, versions, git revision."""
    import importlib.metadata as md

    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        rev = None
    versions = {}
    for pkg in ("tuneall", "torch", "ray", "optuna", "pandas", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    conf = asdict(cfg)
    conf["space"] = {"name": cfg.space.name, "yaml": cfg.space.source}
    return {"config": conf, "command": argv if argv is not None else sys.argv, "git_revision": rev,
            "versions": versions, "python": platform.python_version(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast on an unreachable HOST:PORT (ray.init would retry for minutes before giving up)."""
    import socket

    if address == "auto" or "://" in address:
        return  # Ray resolves these itself
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address must be HOST:PORT (e.g. 10.0.0.1:6379), but got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ConfigError(f"cannot reach the Ray cluster at --address {address}: {e.strerror or e}") from None


def _init_ray(cfg: SearchConfig) -> bool:
    """Connect to ``cfg.address`` or start a local Ray; returns True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    kw = dict(configure_logging=True, logging_level="WARNING", log_to_driver=True)
    if cfg.address:
        _check_reachable(cfg.address)
        try:
            ray.init(address=cfg.address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot reach the Ray cluster at --address {cfg.address}: {str(e).splitlines()[0]}") \
                from None
        return True
    if cfg.dashboard:
        import importlib.util

        if importlib.util.find_spec("aiohttp") is None:
            raise ConfigError('--dashboard needs Ray\'s dashboard packages: pip install -e ".[dashboard]"')
    # TUNEALL_NODE_IP pins the local Ray to one address (tests use 127.0.0.2: Ray rewrites 127.0.0.1 to the
    # machine's external address, and loopback-only tests must not listen there).
    if os.environ.get("TUNEALL_NODE_IP"):
        kw["_node_ip_address"] = os.environ["TUNEALL_NODE_IP"]
    ctx = ray.init(num_cpus=cfg.num_cpus, include_dashboard=cfg.dashboard, dashboard_host="127.0.0.1", **kw)
    if cfg.dashboard:
        print(f"Ray dashboard: http://{ctx.dashboard_url} (bound to 127.0.0.1; Ray token authentication on)")
    return True


# What must match for --resume to continue a results directory (everything that changes what a trial computes).
_RESUME_KEYS = ("budget", "dataset", "searcher", "seeds", "rule", "objectives", "seed")


def _check_resumable(cfg: SearchConfig, out: Path) -> None:
    meta_path = out / "tuneall.json"
    if not meta_path.exists():
        raise ConfigError(f"{out} is not a tuneall search directory (no tuneall.json); refusing to touch it")
    old = json.loads(meta_path.read_text()).get("config", {})
    new = json.loads(json.dumps(asdict(cfg), default=str))
    for key in _RESUME_KEYS:
        if json.loads(json.dumps(old.get(key), default=str)) != new.get(key):
            raise ConfigError(f"{out} belongs to a different search ({key} was {old.get(key)!r}, now "
                              f"{new.get(key)!r}); choose another --name")
    if old.get("space", {}).get("yaml") != cfg.space.source:
        raise ConfigError(f"{out} belongs to a different search (its search space differs); choose another --name")


def run_search(cfg: SearchConfig, argv: list[str] | None = None, verbose: int = 1):
    """Run (or with ``cfg.resume`` continue) the search and write the results directory; returns the frontier."""
    from tuneall.data import load_dataset
    from tuneall.planning import plan_space

    out = cfg.results_dir
    if out.exists() and not cfg.resume:
        raise ConfigError(f"results directory {out} already exists; pass --resume to continue it, or choose "
                          "another --name")
    if cfg.resume and not out.exists():
        raise ConfigError(f"nothing to resume: {out} does not exist")
    if cfg.resume:
        _check_resumable(cfg, out)
    # Everything a user can get wrong is checked before Ray starts or anything is written.
    feasible, _ = plan_space(cfg.space, cfg.budget, cfg.dataset)  # raises with the smallest feasible budget
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    started = _init_ray(cfg)
    try:
        return _fit(cfg, data, feasible, out, argv, verbose)
    finally:
        if started:
            import ray

            ray.shutdown()


def _study_storage(cfg: SearchConfig, out: Path):
    """Optuna storage: ``--study-storage`` URL, else a journal file in the results directory (survives a kill)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if cfg.study_storage:
        try:
            return optuna.storages.RDBStorage(cfg.study_storage)
        except Exception as e:  # noqa: BLE001 - any URL or driver problem is the user's to fix
            raise ConfigError(f"--study-storage {cfg.study_storage!r} is not usable: {str(e).splitlines()[0]}") \
                from None
    return optuna.storages.JournalStorage(JournalFileBackend(str(out / "optuna.journal")))


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


def _fit(cfg: SearchConfig, data, feasible, out: Path, argv, verbose):
    import ray
    from ray import tune

    from tuneall._callbacks import JournalCallback
    from tuneall.planning import DefineByRun, plan_point
    from tuneall.report import build_report, write_trials_table
    from tuneall.space import grid as space_grid

    out.mkdir(parents=True, exist_ok=True)
    meta = provenance(cfg, argv)
    if cfg.resume:  # keep the command that started the search; record the resumes
        old = json.loads((out / "tuneall.json").read_text())
        meta = {**old, "resumes": [*old.get("resumes", []), {"command": meta["command"], "at": meta["created"]}]}
    (out / "tuneall.json").write_text(json.dumps({**meta, "state": "running"}, indent=1, default=str))
    done = journal.read(out)
    done_keys = {journal.point_key(r["config"]) for r in done}
    ctx = {"budget": cfg.budget, "seeds": cfg.seeds, "seed": cfg.seed, "rule": cfg.rule,
           "resources": cfg.resources, "objectives": cfg.objectives, "results_dir": str(out)}
    res = cfg.resources
    # With parallel members a trial's placement group has one bundle per member, so it depends on the sampled k.
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, ctx=ctx, data=data),
        lambda config: tune.PlacementGroupFactory(res.bundles(int(config.get("point", config).get("k", 1)))),
    )
    cpus = ray.cluster_resources().get("CPU", 1)
    per_trial = sum(b.get("CPU", 0) for b in res.bundles(int(feasible["k"].min())))
    concurrency = cfg.concurrency or max(1, int(cpus // per_trial))
    searcher = None
    # reuse_actors: a finished trial's process runs the next one, so torch, tuneall and the dataset are loaded once
    # per process, not once per trial (measured: a 4 s gap between trials without it; benchmarks/search_efficiency.py)
    if cfg.searcher == "grid":
        points = [p for p in space_grid(cfg.space) if _is_feasible(p, cfg, data.info, plan_point)]
        todo = [p for p in points if journal.point_key(p) not in done_keys]
        total = len(points)
        param_space = {"point": tune.grid_search(todo)}
        tune_config = tune.TuneConfig(num_samples=1, max_concurrent_trials=concurrency, reuse_actors=True)
    else:
        searcher = _make_searcher(cfg, DefineByRun(cfg.space, cfg.budget, cfg.dataset), _study_storage(cfg, out))
        requeued = _requeue_unfinished(searcher, done_keys) if cfg.resume else 0
        todo, total = range(max(0, cfg.trials - len(done))), cfg.trials
        param_space = None
        tune_config = tune.TuneConfig(search_alg=searcher, num_samples=max(1, len(todo)),
                                      max_concurrent_trials=concurrency, reuse_actors=True)
        if cfg.resume:
            print(f"tuneall: resuming: {len(done)} finished trial(s) kept, {requeued} interrupted one(s) run again, "
                  f"{len(todo)} to go", flush=True)
    run_config = tune.RunConfig(
        name=cfg.run_name, storage_path=str(out.parent), verbose=verbose, callbacks=[JournalCallback(str(out))],
        failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
    )
    print(f"tuneall: searching {cfg.space.name!r} on {cfg.dataset} at C = {cfg.budget}: {cfg.searcher}, "
          f"{total} trials, {concurrency} at a time, {cfg.seeds} seed(s) each -> {out}", flush=True)
    if len(todo) and cfg.address is None and res.gpus == 0:  # trials run on this machine's CPUs: time a few steps
        _print_estimate(feasible, data.info, cfg, len(todo), concurrency)
    if len(todo):
        tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config).fit()
    records = journal.read(out)
    complete = len(records) >= total
    (out / "tuneall.json").write_text(json.dumps({**meta, "state": "complete" if complete else "interrupted"},
                                                 indent=1, default=str))
    write_trials_table(records, out)
    if searcher is not None:
        searcher._ot_study.trials_dataframe().to_csv(out / "optuna_trials.csv", index=False)
    front = build_report(out)
    front.attrs["complete"] = complete
    if not complete:
        print(f"tuneall: search interrupted after {len(records)} of {total} trials; continue it with the same "
              f"command plus --resume", flush=True)
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
    from tuneall.space import parse_space

    out = Path(results_dir).expanduser().resolve()
    meta_path = out / "tuneall.json"
    if not meta_path.exists():
        raise ConfigError(f"{out} is not a tuneall search directory (no tuneall.json)")
    import yaml

    conf = json.loads(meta_path.read_text())["config"]
    space_src = conf.pop("space")["yaml"]
    conf.update(
        budget=Budget(**conf["budget"]),
        space=parse_space(yaml.safe_load(space_src), source=space_src),
        objectives=tuple(tuple(o) for o in conf["objectives"]),
        resources=Resources(**conf["resources"]),
        name=out.name,
        storage_path=str(out.parent),
        resume=True,
    )
    conf.update(overrides)
    return SearchConfig(**conf)


__all__ = ["SearchConfig", "run_search", "config_from_dir", "parse_objectives", "SEARCHERS", "OBJECTIVES"]
