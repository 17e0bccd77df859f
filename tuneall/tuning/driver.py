"""``tuneall search``: Optuna (through Ray Tune's ``OptunaSearch``) over a search space, run by :mod:`tuneall.runner`.

Every trial goes through the trial factory (:func:`tuneall.planning.points.plan_point`) inside the trial: an infeasible
point is reported with status ``infeasible`` and told to Optuna as a constraint violation, never raised. Finished
trials go to the journal the moment the driver learns of them; the trials table, frontier, figures and summary are
written from it by :mod:`tuneall.reporting.search_report`, and the directory's state last.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tuneall.rundir import journal
from tuneall.rundir import results as R
from tuneall.tuning import study as S
from tuneall.core.budget import Budget
from tuneall.core.config import DEFAULT_OBJECTIVE, SEARCHERS, check_rule
from tuneall.core.errors import ConfigError
from tuneall.planning.factory import Infeasible
from tuneall.runner import RunOptions, TrialContext
from tuneall.planning.space import SearchSpace

# Fields that say where and how fast a search runs, not what its trials compute: a resume may change them.
OPERATIONAL = ("name", "storage_path", "address", "num_cpus", "dashboard", "max_failures", "concurrency", "trials",
               "resume", "study_storage", "data_dir", "executor", "time_budget_s", "save_members", "member_store")
SAVE_MEMBERS = ("all", "best", "none")


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
    time_budget_s: float | None = None  # wall clock: no trial is started that would end after it (None: no limit)
    save_members: str = "best"  # members' weights kept: of every trial, of the chosen allocation, or none
    member_store: bool = True  # members answered from / recorded in member_store/ (exact reuse, tuneall.store.records)

    def __post_init__(self):
        super().__post_init__()
        if self.searcher not in SEARCHERS:
            raise ConfigError(f"unknown searcher {self.searcher!r}; valid: {', '.join(SEARCHERS)}")
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise ConfigError(f"trials must be an integer >= 1, but got {self.trials!r}")
        check_rule(self.rule)
        if self.searcher == "nsga2" and len(self.objectives) < 2:
            raise ConfigError("searcher 'nsga2' is multi-objective: give at least two objectives")
        if self.time_budget_s is not None and (isinstance(self.time_budget_s, bool) or not isinstance(
                self.time_budget_s, (int, float)) or not math.isfinite(self.time_budget_s) or self.time_budget_s <= 0):
            raise ConfigError(f"time_budget must be a number of seconds > 0, but got {self.time_budget_s!r}")
        if self.save_members not in SAVE_MEMBERS:
            raise ConfigError(f"save_members must be one of {', '.join(SAVE_MEMBERS)}, but got {self.save_members!r}")
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
    from tuneall.planning.points import plan_point
    from tuneall.training import ensemble as ensemble_io
    from tuneall.core.progress import allocation_label, trial_heartbeat
    from tuneall.runner import ray_member_trainer
    from tuneall.training.trial import run_trial, select_trainer

    from tuneall.store.backend import on_driver

    point = config.get("point", config)
    repeat = on_driver(ctx.storage, _repeat_of, point, ctx.results_dir)  # the journal is on the driver's disk
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
    from tuneall.store.reuse import for_trial

    store = for_trial(ctx, point, plan, data)  # members answered from the member store where it is exact
    trainer = store or (ray_member_trainer(res, ctx.families) if res.parallel_members
                        else select_trainer(res.members, res.amp))
    # The trial id in the label: Ray's log deduplication would merge two trials' lines that differ only in digits.
    label = " ".join(filter(None, [ensemble_io.current_trial_id(), allocation_label(plan.row())]))
    with trial_heartbeat(label, plan.k * plan.steps * len(plan.seeds), ctx.heartbeat_s), \
            ensemble_io.capturing(ctx.save_members != "none") as members:
        result = run_trial(plan, trial_data, rule=ctx.rules[0], trainer=trainer)
    _save_members(ctx, plan, data, result, members)
    out = {**plan.row(), **result.metrics(), "repeats_json": json.dumps(result.repeats),
           "curve_json": json.dumps(result.curve),
           "constraint": 1.0 if result.status == "diverged" else 0.0,
           **(store.counts if store else {"member_steps_trained": sum(m["steps_done"] for m in result.members),
                                          "member_steps_reused": 0})}
    for m, d in ctx.objectives:  # a diverged trial still reports real, finite values
        if not math.isfinite(out.get(m, float("nan"))):
            out[m] = _worst(d)
    return out


def _save_members(ctx: TrialContext, plan, data, result, members) -> None:
    """The trial's members to ``members/<trial id>/`` (through the driver's store service on a cluster without a
    shared disk)."""
    from tuneall.store.backend import reachable, write_files
    from tuneall.training import ensemble as ensemble_io

    trial_id = ensemble_io.current_trial_id()
    if not members or not trial_id or not reachable(ctx.results_dir, ctx.storage):
        return
    try:
        write_files(ctx.results_dir, ctx.storage, f"{ensemble_io.MEMBERS}/{trial_id}",
                    ensemble_io.files(plan, data.info, data.info.name, ctx.rules[0], members, result))
    except OSError as e:  # weights are a convenience: a full disk must not fail the trial
        print(f"tuneall: members of trial {trial_id} not saved ({e})", flush=True)


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


def run_search(cfg: SearchConfig, argv: list[str] | None = None, verbose: int = 1, dry_run: bool = False,
               confirm: bool = True):
    """Run (or with ``cfg.resume`` continue) the search and write the results directory; returns the frontier.

    ``dry_run``: print the plan and the estimate and return the feasible allocations; nothing is trained or written.
    ``confirm``: ask before a search estimated above an hour, where a person can answer (a TTY, not under CI)."""
    from tuneall.data import check_batch_sizes, dataset_info, load_dataset
    from tuneall.planning.points import plan_space
    from tuneall.training.preflight import preflight
    from tuneall.runner import check_local_fits, check_ray_options, ray_session

    out = cfg.results_dir
    # Everything a user can get wrong is checked before Ray starts or anything is written.
    R.check_storage(cfg.storage_path)
    R.check_new(out, cfg.resume)
    if cfg.resume:
        _check_resumable(cfg, out)
    info = dataset_info(cfg.dataset, cfg.val_fraction)  # user data: loaded (once) and checked here
    feasible, _ = plan_space(cfg.space, cfg.budget, info)  # raises with the smallest feasible budget
    pf = preflight(cfg, feasible, _trials_to_run(cfg, feasible, out), verbose, dry_run, confirm)
    if dry_run:
        feasible.attrs.update(dry_run=True, estimate_s=pf.total_s, results_dir=str(out))
        return feasible
    storage = S.study_storage(cfg, out)
    check_ray_options(cfg)
    check_local_fits(cfg, cfg.resources.bundles(int(feasible["k"].max())))
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction)
    check_batch_sizes(feasible, data)
    if cfg.resume:  # the code and the data the search started on, or one line saying what changed
        from tuneall.tuning.inputs import check

        check(R.read_meta(out), cfg.space, cfg.dataset, data, out)
    from tuneall.tuning._optuna import quiet_optuna  # only now: it imports Ray Tune

    # One process per results directory, from here to the state written last.
    from tuneall.store.backend import serving

    with R.owned(out, cfg.resume), ray_session(cfg), quiet_optuna(), serving(out, cfg.address, verbose):
        old_meta = _check_resumable(cfg, out) if cfg.resume else None  # read again under the lock
        return _fit(cfg, data, feasible, out, argv, verbose, old_meta, storage, pf.mean_trial_s)


def _trials_to_run(cfg: SearchConfig, feasible, out: Path) -> int:
    done = len(journal.read(out)) if cfg.resume else 0
    return max(0, (len(feasible) if cfg.searcher in ("grid", "halving") else cfg.trials) - done)


def _context(cfg: SearchConfig, out: Path, verbose: int = 1, points=None, ids: dict | None = None) -> TrialContext:
    """The trials' context; ``points``: the grid's (or the promoted) points, whose members are planned together;
    ``ids``: the run's fingerprints of the data and model code that member keys hold (tuneall.store.keys)."""
    from tuneall.core.config import HEARTBEAT_S
    from tuneall.store.reuse import reuse_ks
    from tuneall.runner import ship_families
    from tuneall.store.backend import current

    reuse = None
    if cfg.member_store:
        ks = reuse_ks(points) if points is not None else {f: sorted(_k_values(cfg.space, f)) for f in
                                                         cfg.space.families}
        reuse = {"mode": "grid" if points is not None else "own", "ks": ks, "ids": ids}
    return TrialContext(job=trial_metrics, resources=cfg.resources, seeds=cfg.seeds, seed=cfg.seed,
                        rules=(cfg.rule,), objectives=cfg.objectives, budget=cfg.budget, unit=cfg.budget.unit,
                        min_steps=cfg.budget.min_steps, results_dir=str(out), families=ship_families(),
                        heartbeat_s=HEARTBEAT_S if verbose > 0 else 0.0, save_members=cfg.save_members, reuse=reuse,
                        storage=current())


def _k_values(space: SearchSpace, family: str) -> list[int]:
    from tuneall.planning.space import Choice

    axis = space.axis("k", family)
    return [int(v) for v in axis.values] if isinstance(axis, Choice) else list(range(int(axis.low),
                                                                                     min(int(axis.high), 64) + 1))


def _fit(cfg: SearchConfig, data, feasible, out: Path, argv, verbose, old_meta, storage, est_trial_s=None):
    from ray import tune

    from tuneall.tuning._callbacks import JournalCallback, ProgressCallback, legacy_output, live_table
    from tuneall.training import ensemble as ensemble_io
    from tuneall.tuning._searchers import Points, TimeBudget
    from tuneall.core.progress import SearchProgress
    from tuneall.planning.points import DefineByRun, plan_point
    from tuneall.reporting.search_report import build_report
    from tuneall.runner import check_fits, concurrency, with_trial_resources
    from tuneall.planning.space import grid as space_grid
    from tuneall.store.keys import run_ids, warn_rejected

    res = cfg.resources
    check_fits(res.bundles(int(feasible["k"].max())))  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    meta = {**R.provenance(cfg.to_json(), argv), "data": R.data_facts(data.info),
            "torch_threads_per_trial": res.threads}
    if old_meta:  # keep the command that started the search; record the resumes
        meta = {**old_meta, "resumes": [*old_meta.get("resumes", []), {"command": meta["command"],
                                                                       "at": meta["created"]}]}
    ids = run_ids(data, cfg.space.families) if cfg.member_store else None  # once per run, carried to the trials
    if not old_meta:  # the user's code and data by value: a resume runs exactly these (tuneall.tuning.inputs)
        from tuneall.tuning.inputs import KEY, record

        meta[KEY] = record(cfg.space, cfg.dataset, data, ids)
    meta = R.write_meta(out, meta, "running")
    done = _read_journal(out)
    done_keys = {journal.point_key(r["config"]) for r in done}
    grid_points = None
    if cfg.searcher in ("grid", "halving"):
        grid_points = [p for p in space_grid(cfg.space) if _is_feasible(p, cfg, data.info, plan_point)]
        if cfg.searcher == "halving":
            from tuneall.tuning.search_cost import run_halving

            grid_points = run_halving(cfg, data, out, grid_points, _context(cfg, out, 0, grid_points, ids), verbose)
        grid_points.sort(key=lambda p: -int(p["k"]))  # widest ensembles first: they train most members at once
    # With parallel members a trial's placement group has one bundle per member, so it depends on the sampled k.
    trainable = with_trial_resources(_context(cfg, out, verbose, grid_points, ids), data,
                                     lambda config: res.bundles(int(config.get("point", config).get("k", 1))))
    at_once = concurrency(cfg, sum(b.get("CPU", 0) for b in res.bundles(int(feasible["k"].min()))))
    searcher = study_searcher = None  # study_searcher: the Optuna one, whatever wraps it
    # Metric and mode in the TuneConfig: ResultGrid.get_best_result() (also after Tuner.restore) needs no arguments.
    best_by = {"metric": cfg.metric[0], "mode": cfg.mode[0]}
    # reuse_actors: a finished trial's process runs the next one, so torch, tuneall and the dataset are loaded once
    # per process, not once per trial (measured: a 4 s gap between trials without it; benchmarks/search_efficiency.py)
    if grid_points is not None:
        points = grid_points
        todo = [p for p in points if journal.point_key(p) not in done_keys]
        total = len(points)
        param_space = {"point": tune.grid_search(todo)}
        tune_config = tune.TuneConfig(num_samples=1, max_concurrent_trials=at_once, reuse_actors=True, **best_by)
        if cfg.time_budget_s:  # the time budget needs a searcher to refuse: the same points, one by one
            searcher = TimeBudget(Points(todo), cfg.time_budget_s, est_trial_s)
            param_space = None
            tune_config = tune.TuneConfig(search_alg=searcher, num_samples=max(1, len(todo)),
                                          max_concurrent_trials=at_once, reuse_actors=True, **best_by)
    else:
        searcher = study_searcher = S.make_searcher(cfg, DefineByRun(cfg.space, cfg.budget, data.info), storage(),
                                                   answered=_answered(done))
        requeued = S.requeue_unfinished(searcher, done_keys) if cfg.resume else 0
        todo, total = range(max(0, cfg.trials - len(done))), cfg.trials
        param_space = None
        if cfg.time_budget_s:
            searcher = TimeBudget(searcher, cfg.time_budget_s, est_trial_s)
        tune_config = tune.TuneConfig(search_alg=searcher, num_samples=max(1, len(todo)),
                                      max_concurrent_trials=at_once, reuse_actors=True, **best_by)
        if cfg.resume and verbose:
            print(f"tuneall: resuming: {len(done)} finished trial(s) kept, {requeued} interrupted one(s) run again, "
                  f"{len(todo)} to go (sampler seed {getattr(study_searcher, 'sampler_seed', cfg.seed)}, continued "
                  "from the study; points already answered are not trained again)", flush=True)
    progress = SearchProgress(total, cfg.objectives, done=len(done))
    run_config = tune.RunConfig(
        name=cfg.run_name, storage_path=str(out.parent), verbose=verbose, failure_config=tune.FailureConfig(
            max_failures=cfg.max_failures), progress_reporter=live_table(cfg.objectives, grid_points is not None),
        callbacks=[JournalCallback(str(out)), *([ProgressCallback(progress)] if verbose > 0 else [])],
    )
    if verbose:
        from tuneall.tuning.sampling import tpe_startup

        startup = f" ({tpe_startup(cfg.trials)} random start-up trials)" if cfg.searcher == "tpe" else ""
        store = ", member store on" if cfg.member_store else ""
        print(f"tuneall: searching {cfg.space.name!r} on {cfg.dataset} at C = {cfg.budget}: {cfg.searcher}{startup}, "
              f"{total} trials, {at_once} at a time, {cfg.seeds} seed(s) each{store} -> {out}", flush=True)
    if len(todo):
        with legacy_output():
            tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config).fit()
    records = _read_journal(out, quiet=True)
    warn_rejected([r.get("metrics") for r in records[len(done):]])  # once for the run, not once per trial
    timed_out = isinstance(searcher, TimeBudget) and searcher.stopped
    if timed_out:  # an intended end: the report covers exactly the trials that ran, and says so
        meta = R.write_meta(out, {**meta, "time_budget": {"seconds": cfg.time_budget_s, "stopped": True,
                                                          "trials_run": len(records), "trials_planned": total}},
                            "running")
    complete = len(records) >= total or timed_out
    study = getattr(study_searcher, "_ot_study", None)
    if study is not None:
        from tuneall.rundir.fsio import atomic_write_frame

        atomic_write_frame(study.trials_dataframe(), out / R.OPTUNA_TRIALS)
    front = build_report(out, state="complete" if complete else "interrupted")
    best = front.attrs.get("best")  # the allocation the summary names, not the frontier's first row
    best_id = str(best["trial_id"]) if best else None
    if cfg.member_store and cfg.save_members != "none" and best_id:
        _weights_of_chosen(cfg, data, out, records, best_id, verbose)
    (ensemble_io.keep_only if cfg.save_members == "best" else ensemble_io.mark_best)(out, best_id)
    # The count lets `report` tell a journal that lost records since from a complete one.
    meta = {**meta, "trials_finished": len(records)}
    R.write_meta(out, meta, "complete" if complete else "interrupted")  # last: a complete directory has its report
    front.attrs["complete"] = complete
    front.attrs["time_budget_reached"] = timed_out
    if timed_out:
        print(f"tuneall: time budget reached: {len(records)} of {total} trials ran; the report covers exactly "
              f"those (tuneall resume {out} runs the rest)", flush=True)
    if not complete:
        print(f"tuneall: search interrupted after {len(records)} of {total} trials; continue it with: "
              f"tuneall resume {out}", flush=True)
    return front


def _weights_of_chosen(cfg: SearchConfig, data, out: Path, records: list[dict], best_id: str, verbose: int) -> None:
    """The chosen trial's member weights where the member store answered its members: read from the store (a member
    keeps its weights at every trial's T it passes while training), or, for records without them, the members
    trained again here, deterministically, at the trials' thread count; then saved."""
    import torch

    from tuneall.training import ensemble as ensemble_io
    from tuneall.data import with_fraction
    from tuneall.planning.points import plan_point
    from tuneall.core.progress import allocation_label
    from tuneall.training.trial import run_trial

    d = out / ensemble_io.MEMBERS / best_id
    try:
        if json.loads((d / ensemble_io.MANIFEST).read_text()).get("files"):
            return
    except (OSError, ValueError):
        pass
    rec = next((r for r in records if str(r.get("trial_id")) == best_id), None)
    if rec is None or not isinstance(rec.get("config"), dict):
        return
    point = rec["config"].get("point", rec["config"])
    ctx = _context(cfg, out, 0)
    try:
        plan = plan_point(point, cfg.budget, data.info, repeats=cfg.seeds, base_seed=cfg.seed)
    except Exception:  # noqa: BLE001 - weights are a convenience
        return
    plan = replace(plan, train=ctx.train_config(plan.train))
    part = with_fraction(data, plan.allocation.data_fraction)
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.resources.threads)
    try:
        stored = _stored_weights(out, plan, data, part, cfg.resources.threads, cfg.rule)
        if stored is not None:  # every member's weights at this T were kept when it was trained: no training
            result, members = stored
        else:
            if verbose > 0:
                print(f"tuneall: training the chosen allocation's members again for their weights (the member "
                      f"store lacks some at this trial's steps): {allocation_label(plan.row())}", flush=True)
            with ensemble_io.capturing(True) as members:
                result = run_trial(plan, part, rule=cfg.rule)
        ensemble_io.save(d, plan, data.info, data.info.name, cfg.rule, members, result)
    except OSError as e:
        print(f"tuneall: members of trial {best_id} not saved ({e})", flush=True)
    finally:
        torch.set_num_threads(before)


def _stored_weights(out: Path, plan, data, part, threads: int, rule: str):
    """(the trial's result, [(seed, weights)]) answered from the member store without training, when every member's
    record holds its weights at the trial's steps (kept while it trained: tuneall.store.reuse); else None."""
    from tuneall.store import records as S
    from tuneall.store.reuse import keyed_trainer
    from tuneall.training.trial import curve_steps, run_trial

    # Keyed as the search's trials key them: the whole data's fingerprint (the key holds the data fraction).
    trainer = keyed_trainer(out, data, None, threads)
    members = []
    for seeds in plan.seeds:
        for seed in seeds:
            key = trainer.key(plan, seed)
            rec = trainer.store.load(S.key_id(key), key)
            if rec is None or plan.steps not in rec.weights or not rec.covers(plan.steps, curve_steps(plan.steps)):
                return None
            members.append((seed, rec.weights[plan.steps]))
    return run_trial(plan, part, rule=rule, trainer=trainer), members  # every record covers it: nothing trains


def _read_journal(out: Path, quiet: bool = False) -> list[dict]:
    """The journal's usable records; damaged lines are named in one warning line on stderr (they are run again)."""
    read = journal.read_checked(out)
    if read.skipped and not quiet:
        print(f"tuneall: warning: {read.describe(out / R.JOURNAL)}; their trials are run again", file=sys.stderr,
              flush=True)
    return read.records


def _answered(records: list[dict]) -> dict:
    """point key -> metrics of every point the journal answered (its first record), for the searcher."""
    out: dict = {}
    for r in records:
        m = r.get("metrics") or {}
        if r.get("error") is None and m.get("status") in ("ok", "diverged", "infeasible"):
            out.setdefault(journal.point_key(r.get("config") or {}), m)
    return out


def _is_feasible(point: dict, cfg: SearchConfig, info, plan_point) -> bool:
    try:
        plan_point(point, cfg.budget, info)
        return True
    except (Infeasible, ConfigError):
        return False


def config_from_dir(results_dir: str | Path, **overrides) -> SearchConfig:
    """The SearchConfig a results directory was made with (for ``tuneall resume DIR``)."""
    import yaml

    from tuneall.core.config import Resources
    from tuneall.planning.space import parse_space

    out = Path(results_dir).expanduser().resolve()
    if R.kind(out) != "search":
        raise ConfigError(f"{out} is a sweep; sweeps cannot be resumed (run the sweep again with another name)")
    meta = R.read_meta(out)
    if not meta:
        raise ConfigError(f"{out} is not a tuneall search directory (no {R.META})")
    conf = dict(meta["config"])
    from tuneall.tuning.inputs import pin

    pin(meta)  # the factories and loader from the copies the search kept, from any working directory
    try:
        space_src = conf.pop("space")["yaml"]
        conf.update(
            budget=Budget(**conf["budget"]),
            space=parse_space(yaml.safe_load(space_src), source=space_src),
            objectives=tuple(tuple(o) for o in conf["objectives"]),
            resources=Resources(**conf["resources"]),
        )
        if "resolved" in (meta["config"]["space"] or {}):  # fixed axes (e.g. an --lr) as the search ran them
            from tuneall.planning.space import with_fixed

            fixed = {k: v["values"][0] for k, v in meta["config"]["space"]["resolved"]["axes"].items()
                     if isinstance(v, dict) and len(v.get("values") or ()) == 1}
            conf["space"] = with_fixed(conf["space"], **fixed)
        conf.update(name=out.name, storage_path=str(out.parent), resume=True, **overrides)
        return SearchConfig(**{k: v for k, v in conf.items() if k in SearchConfig.__dataclass_fields__})
    except ConfigError as e:  # e.g. an invalid space or budget recorded in it
        raise ConfigError(f"{out / R.META} is damaged ({e}); it cannot be resumed") from None
    except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as e:
        what = f"missing key {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {' '.join(str(e).split())}"
        raise ConfigError(f"{out / R.META} is damaged ({what[:200]}); it cannot be resumed") from None


__all__ = ["SearchConfig", "run_search", "config_from_dir", "trial_metrics", "SEARCHERS", "OPERATIONAL"]
