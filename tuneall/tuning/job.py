"""The search's job: one trial from its sampled config, trained through the factory (and the member store), as the
flat metrics reported to Ray Tune; its members' weights saved where the results directory is reachable."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

from tuneall.core.errors import ConfigError
from tuneall.planning.factory import Infeasible
from tuneall.rundir import journal
from tuneall.rundir import results as R
from tuneall.runner import TrialContext

def _worst(mode: str) -> float:
    # A finite stand-in for "no result": Optuna learns the point is bad; the constraint marks it infeasible.
    return 0.0 if mode == "max" else 1e30


def trial_metrics(config: dict, ctx: TrialContext, data) -> dict:
    """The search's job: one trial from its sampled ``config``, as the flat metrics reported to Ray Tune, with the
    answer rule's score (:data:`tuneall.core.choice.SCORE`), which Ray and Optuna rank by."""
    from tuneall.core.choice import SCORE, score_metrics

    if config.get("reuse_ks") and ctx.reuse:  # halving's full trials: the promoted k, known only after the rungs
        ctx = replace(ctx, reuse={**ctx.reuse, "ks": json.loads(config["reuse_ks"])})
    out = _trial_metrics(config, ctx, data)
    return {**out, SCORE: score_metrics(out, ctx.objectives)}


def _trial_metrics(config: dict, ctx: TrialContext, data) -> dict:
    from tuneall.data import with_fraction
    from tuneall.planning.points import plan_point
    from tuneall.training import ensemble as ensemble_io
    from tuneall.core.progress import allocation_label, trial_heartbeat
    from tuneall.runner import ray_member_trainer
    from tuneall.training.trainers import select_trainer
    from tuneall.training.trial import run_trial

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
    with trial_heartbeat(label, plan.k * plan.steps * len(plan.seeds), ctx.heartbeat_s, plan.seeds):
        result = run_trial(plan, trial_data, rule=ctx.rules[0], trainer=trainer)
    if ctx.save_members != "none":
        _save_members(ctx, plan, data, result)
    out = {**plan.row(), **result.metrics(), "repeats_json": json.dumps(result.repeats),
           "curve_json": json.dumps(result.curve),
           "constraint": 1.0 if result.status == "diverged" else 0.0,
           **(store.counts if store else {"member_steps_trained": sum(m["steps_done"] for m in result.members),
                                          "member_steps_reused": 0})}
    for m, d in ctx.objectives:  # a diverged trial still reports real, finite values
        if not math.isfinite(out.get(m, float("nan"))):
            out[m] = _worst(d)
    return out


def _save_members(ctx: TrialContext, plan, data, result) -> None:
    """The trial's members to ``members/<trial id>/`` (through the driver's store service on a cluster without a
    shared disk)."""
    from tuneall.store.backend import reachable, write_files
    from tuneall.training import ensemble as ensemble_io

    trial_id = ensemble_io.current_trial_id()
    if not result.weights or not trial_id or not reachable(ctx.results_dir, ctx.storage):
        return
    try:
        write_files(ctx.results_dir, ctx.storage, f"{ensemble_io.MEMBERS}/{trial_id}",
                    ensemble_io.files(plan, data.info, data.info.name, ctx.rules[0], result,
                                      transform=data.transform, data_source=data.source))
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
    for rec in journal.read_checked(results_dir).records:  # quiet: the driver named damaged lines once already
        m = rec.get("metrics") or {}
        if m.get("status") in ("ok", "diverged") and journal.point_key(rec.get("config") or {}) == key:
            return {**{k: v for k, v in m.items() if k not in skip}, "repeat_of": rec["trial_id"]}
    return None


def is_feasible(point: dict, cfg, info, plan_point) -> bool:
    try:
        plan_point(point, cfg.budget, info)
        return True
    except (Infeasible, ConfigError):
        return False


__all__ = ["trial_metrics", "is_feasible"]
