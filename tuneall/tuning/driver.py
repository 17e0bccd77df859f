"""``tuneall search``: Optuna (through Ray Tune's ``OptunaSearch``) over a search space, run by :mod:`tuneall.runner`.

Every trial goes through the trial factory (:func:`tuneall.planning.points.plan_point`) inside the trial: an infeasible
point is reported with status ``infeasible`` and told to Optuna as a constraint violation, never raised. Finished
trials go to the journal the moment the driver learns of them; the trials table, frontier, figures and summary are
written from it by :mod:`tuneall.reporting.search_report`, and the directory's state last.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from tuneall.planning.space import SearchSpace
from tuneall.rundir import journal
from tuneall.rundir import results as R
from tuneall.runner import TrialContext
from tuneall.tuning import study
from tuneall.tuning.config import OPERATIONAL, SEARCHERS, SearchConfig, check_resumable, config_from_dir
from tuneall.tuning.job import is_feasible, trial_metrics
from tuneall.tuning.weights import weights_of_chosen

def run_search(cfg: SearchConfig, argv: list[str] | None = None, verbose: int = 1, dry_run: bool = False,
               confirm: bool = True):
    """Run (or with ``cfg.resume`` continue) the search and write the results directory; returns the frontier.

    ``dry_run``: print the plan and the estimate and return the feasible allocations; nothing is trained or written.
    ``confirm``: ask before a search estimated above an hour, where a person can answer (a TTY, not under CI)."""
    from tuneall.data import check_batch_sizes, dataset_info, load_dataset
    from tuneall.planning.points import plan_space
    from tuneall.training.preflight import preflight
    from tuneall.runner import check_local_fits, check_ray_options, ray_session
    from tuneall.training.sanity import check_verbose
    from tuneall.tuning.interrupt import stops_cleanly

    check_verbose(verbose)  # before anything is created or Ray starts
    if verbose and getattr(cfg, "auto_reason", None):
        print(f"tuneall: --searcher auto chose {cfg.searcher}: {cfg.auto_reason}", flush=True)
    out = cfg.results_dir
    # Everything a user can get wrong is checked before Ray starts or anything is written.
    R.check_storage(cfg.storage_path)
    R.check_new(out, cfg.resume)
    if cfg.resume:
        check_resumable(cfg, out)
    info = dataset_info(cfg.dataset, cfg.val_fraction)  # user data: loaded (once) and checked here
    feasible, _ = plan_space(cfg.space, cfg.budget, info)  # raises with the smallest feasible budget
    # Resources before the estimate, which times steps with the trials' thread count (a --cpus-per-trial 1000
    # that this machine cannot hold would start 1,000 threads).
    check_ray_options(cfg)
    check_local_fits(cfg, cfg.resources.bundles(int(feasible["k"].max())))
    check_batch_sizes(feasible, info)  # before the estimate trains at such a batch size
    pf = preflight(cfg, feasible, _trials_to_run(cfg, feasible, out), verbose, dry_run, confirm)
    if dry_run:
        feasible.attrs.update(dry_run=True, estimate_s=pf.total_s, results_dir=str(out))
        return feasible
    storage = study.study_storage(cfg, out)
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction)
    if cfg.resume:  # the code and the data the search started on, or one line saying what changed
        from tuneall.tuning.inputs import check

        check(R.read_meta(out), cfg.space, cfg.dataset, data, out)
    from tuneall.store.backend import serving
    from tuneall.store.shared import store_root
    from tuneall.tuning._optuna import quiet_optuna  # only now: it imports Ray Tune

    # One process per results directory, from here to the state written last.
    with R.owned(out, cfg.resume), ray_session(cfg), quiet_optuna(), stops_cleanly(out), \
            serving(out, cfg.address, verbose, store_root(out, cfg.member_store) if cfg.member_store else None):
        old_meta = check_resumable(cfg, out) if cfg.resume else None  # read again under the lock
        return _fit(cfg, data, feasible, out, argv, verbose, old_meta, storage, pf.mean_trial_s)


def _trials_to_run(cfg: SearchConfig, feasible, out: Path) -> int:
    done = len(journal.read(out)) if cfg.resume else 0
    return max(0, (len(feasible) if cfg.searcher in ("grid", "halving") else cfg.trials) - done)


def _context(cfg: SearchConfig, out: Path, verbose: int = 1, points=None, ids: dict | None = None) -> TrialContext:
    """The trials' context; ``points``: the grid's points, whose members are planned together (halving's full trials
    carry the promoted ones in their config); ``ids``: the run's fingerprints of the data and model code that member
    keys hold (tuneall.store.keys)."""
    from tuneall.core.config import HEARTBEAT_S
    from tuneall.models.flops import flop_table
    from tuneall.runner import ship_families
    from tuneall.store.backend import current
    from tuneall.store.reuse import reuse_ks
    from tuneall.store.shared import store_root

    reuse = None
    if cfg.member_store:
        ks = reuse_ks(points) if points is not None else {f: sorted(_k_values(cfg.space, f)) for f in
                                                         cfg.space.families}
        reuse = {"mode": "grid" if points is not None else "own", "ks": ks, "ids": ids,
                 "store": str(store_root(out, cfg.member_store))}
    from tuneall.tuning.rungs import halving_job

    job = halving_job if cfg.searcher == "halving" else trial_metrics  # halving: rung and full trials in one run
    return TrialContext(job=job, resources=cfg.resources, seeds=cfg.seeds, seed=cfg.seed, rules=(cfg.rule,),
                        objectives=cfg.objectives, budget=cfg.budget, unit=cfg.budget.unit, min_steps=cfg.budget.min_steps, results_dir=str(out), families=ship_families(),
                        flops=flop_table(), heartbeat_s=HEARTBEAT_S if verbose > 0 else 0.0,
                        save_members=cfg.save_members, reuse=reuse, storage=current())


def _k_values(space: SearchSpace, family: str) -> list[int]:
    from tuneall.planning.space import Choice

    axis = space.axis("k", family)
    return [int(v) for v in axis.values] if isinstance(axis, Choice) else list(range(int(axis.low),
                                                                                     min(int(axis.high), 64) + 1))


@dataclass
class _Trials:
    """What Ray Tune is asked to run: a grid's remaining points or a searcher's samples."""

    total: int  # trials the search plans in all (finished ones included; halving: its points, until the rungs decide)
    todo: int  # trials still to run
    param_space: dict | None = None
    searcher: object = None  # what Ray Tune drives (possibly wrapped by the time budget)
    study_searcher: object = None  # the Optuna one, whatever wraps it


def _fit(cfg: SearchConfig, data, feasible, out: Path, argv, verbose, old_meta, storage, est_trial_s=None):
    from tuneall.core.progress import SearchProgress
    from tuneall.runner import check_fits, concurrency, run_tune, with_trial_resources
    from tuneall.tuning._callbacks import JournalCallback, ProgressCallback, live_table

    import time

    started = time.monotonic()  # a time budget counts from here: halving's rungs spend it too
    res = cfg.resources
    check_fits(res.bundles(int(feasible["k"].max())))  # before anything is written
    from tuneall.store.keys import run_ids, warn_rejected

    ids = run_ids(data, cfg.space.families) if cfg.member_store else None  # once per run, carried to the trials
    meta = _start(cfg, data, out, argv, old_meta, ids)
    done = _read_journal(out)
    grid_points = _grid_points(cfg, data)
    progress = SearchProgress(len(grid_points or ()) or cfg.trials, cfg.objectives, done=len(done),
                              axes=cfg.space.varying_recipe())
    trials = _trials(cfg, data, out, done, grid_points, storage, est_trial_s, verbose, started, progress)
    from tuneall.tuning._searchers import TimeBudget

    if isinstance(trials.searcher, TimeBudget):
        trials.searcher.start = started  # the time budget's clock starts with the search
    # With parallel members a trial's placement group has one bundle per member, so it depends on the sampled k
    # (a halving rung trial's members train one after another: one bundle).
    trainable = with_trial_resources(_context(cfg, out, verbose, grid_points, ids), data,
                                     lambda config: res.bundles(int(config.get("point", config).get("k", 1))))
    at_once = concurrency(cfg, sum(b.get("CPU", 0) for b in res.bundles(int(feasible["k"].min()))))
    if cfg.searcher == "halving":  # rung trials hold one bundle whatever their k
        at_once = max(at_once, concurrency(cfg, cfg.resources.cpus))
    progress.total = trials.total
    if verbose:
        _announce(cfg, trials.total, at_once, out)
    if trials.todo:
        from tuneall.core.choice import SCORE
        from tuneall.core.progress import ray_verbosity

        # Ray ranks by the first objective with the answer rule's tie-break folded in (reporting/choice.py), so
        # get_best_result() and its live "Current best trial" name the allocation tuneall names. Ray's table of
        # trials only at --verbose 2 and above: tuneall's own lines carry the news.
        base = len(done)  # the records read above: trial_order's base for this run's trials
        run_tune(trainable, name=cfg.run_name, storage_path=R.storage.ray_storage_path(out), concurrency=at_once,
                 max_failures=cfg.max_failures, verbose=ray_verbosity(verbose), param_space=trials.param_space,
                 search_alg=trials.searcher, num_samples=1 if trials.param_space else max(1, trials.todo),
                 metric=SCORE, mode=cfg.mode[0],
                 progress_reporter=live_table(cfg.objectives, grid_points is not None) if verbose >= 2 else None,
                 callbacks=[JournalCallback(str(out), base),
                            *([ProgressCallback(progress, base)] if verbose > 0 else [])])
    warn_rejected([r.get("metrics") for r in _read_journal(out, quiet=True)[len(done):]])  # once, not per trial
    return _finish(cfg, data, out, meta, trials, verbose)


def _start(cfg: SearchConfig, data, out: Path, argv, old_meta, ids: dict | None) -> dict:
    """``tuneall.json`` in state running: the search's provenance, or the old one with this resume recorded."""
    out.mkdir(parents=True, exist_ok=True)
    meta = {**R.provenance(cfg.to_json(), argv), "data": R.data_facts(data.info),
            "torch_threads_per_trial": cfg.resources.threads}
    if old_meta:  # keep the command that started the search; record the resumes
        meta = {**old_meta, "resumes": [*old_meta.get("resumes", []), {"command": meta["command"],
                                                                       "at": meta["created"]}]}
    else:  # the user's code and data by value: a resume runs exactly these (tuneall.tuning.inputs)
        from tuneall.tuning.inputs import KEY, record

        meta[KEY] = record(cfg.space, cfg.dataset, data, ids)
    return R.write_meta(out, meta, "running")


def _grid_points(cfg: SearchConfig, data) -> list[dict] | None:
    """The feasible grid (halving's candidates), widest ensembles first; None for samplers."""
    if cfg.searcher not in ("grid", "halving"):
        return None
    from tuneall.planning.points import plan_point
    from tuneall.planning.space import grid as space_grid

    points = [p for p in space_grid(cfg.space) if is_feasible(p, cfg, data.info, plan_point)]
    return sorted(points, key=lambda p: -int(p["k"]))  # widest ensembles first: they train most members at once


def _trials(cfg: SearchConfig, data, out: Path, done: list[dict], grid_points, storage, est_trial_s, verbose,
            started: float, progress) -> _Trials:
    """The grid's points not in the journal, halving's rungs and promoted points, or the Optuna searcher continued
    from its study (time budget applied)."""
    from tuneall.tuning._searchers import Points, TimeBudget

    done_keys = {journal.point_key(r["config"]) for r in done}
    if cfg.searcher == "halving":
        from tuneall.tuning.search_cost import halving_searcher, most_trials

        trials = _Trials(len(grid_points), most_trials(grid_points))

        def promoted(n: int) -> None:  # the full trials' count is known once the rungs have decided
            trials.total = progress.total = n
            progress.start = progress.clock()  # their ETA from their own speed, not the rungs'

        trials.searcher = trials.study_searcher = halving_searcher(
            cfg, data, out, grid_points, done_keys, bool(cfg.member_store), verbose, started, est_trial_s, promoted)
        return trials
    if grid_points is not None:
        todo = [p for p in grid_points if journal.point_key(p) not in done_keys]
        if cfg.time_budget_s:  # the time budget needs a searcher to refuse: the same points, one by one
            return _Trials(len(grid_points), len(todo), searcher=TimeBudget(Points(todo), cfg.time_budget_s,
                                                                            est_trial_s))
        from ray import tune

        return _Trials(len(grid_points), len(todo), param_space={"point": tune.grid_search(todo)})
    from tuneall.tuning.define_by_run import DefineByRun

    searcher = study.make_searcher(cfg, DefineByRun(cfg.space, cfg.budget, data.info), storage(),
                                   answered=_answered(done))
    requeued = study.requeue_unfinished(searcher, done_keys) if cfg.resume else 0
    todo = max(0, cfg.trials - len(done))
    if cfg.resume and verbose:
        print(f"tuneall: resuming: {len(done)} finished trial(s) kept, {requeued} interrupted one(s) run again, "
              f"{todo} to go (sampler seed {getattr(searcher, 'sampler_seed', cfg.seed)}, continued "
              "from the study; points already answered are not trained again)", flush=True)
    wrapped = TimeBudget(searcher, cfg.time_budget_s, est_trial_s) if cfg.time_budget_s else searcher
    return _Trials(cfg.trials, todo, searcher=wrapped, study_searcher=searcher)


def _announce(cfg: SearchConfig, total: int, at_once: int, out: Path) -> None:
    from tuneall.tuning.halving import RUNGS
    from tuneall.tuning.sampling import tpe_startup

    n = tpe_startup(cfg.trials)
    startup = ("" if cfg.searcher != "tpe" else f" ({n} random start-up trials)" if n < cfg.trials else
               f" (all {cfg.trials} random: TPE models from trial {n + 1} on)")
    from tuneall.store.shared import describe

    store = describe(cfg.member_store)
    count = (f"{total} trials" if cfg.searcher != "halving" else
             f"{total} allocations in {len(RUNGS)} rungs (at " + " and ".join(f"1/{round(1 / f)}" for f in RUNGS)
             + " of each allocation's steps), the promoted ones then as full trials")
    print(f"tuneall: searching {cfg.space.name!r} on {cfg.dataset} at C = {cfg.budget}: {cfg.searcher}{startup}, "
          f"{count}, {at_once} at a time, {cfg.seeds} seed(s) each{store} -> {R.storage.display(out)}",
          flush=True)


def _finish(cfg: SearchConfig, data, out: Path, meta: dict, trials: _Trials, verbose: int):
    """The report, the chosen ensemble's weights and, last, the state: a complete directory has its report."""
    from tuneall.reporting.search_report import build_report
    from tuneall.training import ensemble as ensemble_io

    records, total = _read_journal(out, quiet=True), trials.total
    timed_out = bool(getattr(trials.searcher, "stopped", False))  # TimeBudget's, or Halving's full trials
    if timed_out:  # an intended end: the report covers exactly the trials that ran, and says so
        meta = R.write_meta(out, {**meta, "time_budget": {"seconds": cfg.time_budget_s, "stopped": True,
                                                          "trials_run": len(records), "trials_planned": total}},
                            "running")
    complete = len(records) >= total or timed_out
    ot_study = getattr(trials.study_searcher, "_ot_study", None)
    if ot_study is not None:
        from tuneall.rundir.fsio import atomic_write_frame

        atomic_write_frame(ot_study.trials_dataframe(), out / R.OPTUNA_TRIALS)
    front = build_report(out, state="complete" if complete else "interrupted")
    best = front.attrs.get("best")  # the allocation the summary names, not the frontier's first row
    best_id = str(best["trial_id"]) if best else None
    if cfg.member_store and cfg.save_members != "none" and best_id:
        weights_of_chosen(cfg, data, out, records, best_id, verbose, _context(cfg, out, 0))
    (ensemble_io.keep_only if cfg.save_members == "best" else ensemble_io.mark_best)(out, best_id)
    # The count lets `report` tell a journal that lost records since from a complete one.
    R.write_meta(out, {**meta, "trials_finished": len(records)}, "complete" if complete else "interrupted")
    front.attrs["complete"] = complete
    front.attrs["time_budget_reached"] = timed_out
    if timed_out:
        print(f"tuneall: time budget reached: {len(records)} of {total} trials ran; the report covers exactly "
              f"those (tuneall resume {R.storage.display(out)} runs the rest)", flush=True)
    if not complete:
        print(f"tuneall: search interrupted after {len(records)} of {total} trials; continue it with: "
              f"tuneall resume {R.storage.display(out)}", flush=True)
    return front


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


__all__ = ["SearchConfig", "run_search", "config_from_dir", "trial_metrics", "SEARCHERS", "OPERATIONAL"]
