"""Successive halving's rung trials: one trial per architecture per rung. It trains each member of the architecture
once (member j to the longest rung steps of any alive k > j) through the member store, evaluates them where halving
reads the curves (:mod:`tuneall.tuning.halving`), and returns every alive k's rung metrics; a later rung or the full
trial continues each member from its stored state instead of training it again.

Rung steps and the rung curves' evaluations lie on the grid {4, 5, 6, 7} x 2^i (:mod:`tuneall.store.replay`), shared
by every k of the architecture: the curves of all its k read the same steps, so the evaluations a member needs
(its own rung's curves, and every step a later rung or full trial reads below its horizon, without which that one
could not continue it) are about four an octave, not four an octave for each k."""

from __future__ import annotations

import json
from dataclasses import replace

from tuneall.store import records as S
from tuneall.store.replay import grid_in
from tuneall.store.reuse import StoreTrainer, architecture_plans, keyed_trainer
from tuneall.tuning.halving import RUNGS, rung_steps


def rung_evals(steps: int) -> tuple[int, ...]:
    """A rung's evaluations: the grid steps in [steps / 4, steps] and ``steps``, where the curve has left its first
    transient (the power law of :func:`tuneall.tuning.halving.predict_full` is fitted to these: eight or nine)."""
    return tuple(sorted(set(grid_in(steps / 4, steps)) | {int(steps)}))


def schedule_evals(full_steps: int, min_steps: int = 1) -> set[int]:
    """Every step at which halving reads an allocation of ``full_steps`` steps: each rung's evaluations and the full
    trial's anytime curve."""
    from tuneall.training.trial import curve_steps

    out = {full_steps, *curve_steps(full_steps)}
    for f in RUNGS:
        out |= set(rung_evals(rung_steps(full_steps, f, min_steps)))
    return out


def member_horizons(full: dict, rung: dict, min_steps: int) -> list[tuple[int, tuple[int, ...]]]:
    """(steps, evaluations) of members 0..max k - 1 at a rung: member j is trained to the longest rung steps
    (``rung``: k -> plan) of any k > j and evaluated at every step a rung or the full trial of those k reads
    (``full``: k -> the factory's plan). The alive k only shrink from rung to rung, so a later rung asks a member
    for a subset of these below where this one left it: it continues the member."""
    return [(max(p.steps for k, p in rung.items() if k > j),
             tuple(sorted(set().union(*(schedule_evals(p.steps, min_steps) for k, p in full.items() if k > j)))))
            for j in range(max(rung))]


def rung_job(config: dict, ctx, data) -> dict:
    """A halving rung's trial for one architecture: ``config["trial"]["points"]`` (its alive points, every k, or a
    share of them: :func:`tuneall.tuning.search_cost.rung_trials`) trained to ``config["fraction"]`` of each point's
    T through one store trainer, its members planned over ``config["trial"]["arch_ks"]`` (default: the points' k),
    so each member is trained once and read from the trainer's cache by every other k. Returns ``{"status": "ok",
    "points_json"}``: ``[{"point", "metrics"}, ...]`` (:func:`rung_points`), each metrics the one halving reads
    (:func:`tuneall.tuning.halving.select`), with the member-steps trained for it."""
    import torch

    from tuneall.data import with_fraction

    trial, f = config["trial"], float(config["fraction"])
    pts = sorted(trial["points"], key=lambda p: -int(p["k"]))
    ks = {int(k) for k in trial.get("arch_ks") or ()} | {int(p["k"]) for p in pts}
    ms = ctx.budget.min_steps
    full = architecture_plans(pts[0], ks, ctx.budget, data.info, ctx.seeds, ctx.seed)
    full = {k: p for k, p in full.items() if k in ks}
    train = ctx.train_config(next(iter(full.values())).train)
    plans = {k: replace(p, train=train, steps=rung_steps(p.steps, f, ms)) for k, p in full.items()}
    trainer = keyed_trainer(ctx.results_dir, data, ctx.reuse.get("ids"), torch.get_num_threads(),
                            member_horizons(full, plans, ms), storage=getattr(ctx, "storage", None),
                            root=ctx.reuse.get("store"))
    part = with_fraction(data, full[max(full)].allocation.data_fraction)  # the architecture's: the same for every k
    val = getattr(part, "y_val", None) is not None  # choose on validation where the data has that split
    split = "val" if val else "test"
    labels = part.y_val if val else part.y_test
    out, floor = [], None
    for p in pts:  # widest first: it trains every member to its horizon, the narrower read them from the cache
        k = int(p["k"])
        if k not in plans:
            out.append({"point": p, "metrics": {"status": "failed", "error": "infeasible at this budget"}})
            continue
        before = dict(trainer.counts)
        if floor is None:  # the same for every k: member 0 at its horizon (its members' counts go to this point)
            floor = _first_member_curve(trainer, plans[k], part, labels, split)
        out.append({"point": p, "metrics": _rung_metrics(trainer, plans[k], full[k].steps, f, ms, part, labels,
                                                         split, ctx.rules[0], floor)})
        out[-1]["metrics"].update({c: v - before.get(c, 0) for c, v in trainer.counts.items()})
    # One JSON string, not a list of dicts: Ray Tune's loggers warn about (and drop) a metric that is not a scalar.
    return {"status": "ok", "points_json": json.dumps(out)}


def halving_job(config: dict, ctx, data) -> dict:
    """A halving search's job: a rung trial (:func:`rung_job`) or a promoted point's full trial
    (:func:`tuneall.tuning.job.trial_metrics`), both in the search's one Ray Tune run. A rung trial ranks below
    every allocation on the answer rule's score (Ray's ``get_best_result()`` never names one)."""
    from tuneall.core.choice import SCORE
    from tuneall.tuning.halving import is_rung
    from tuneall.tuning.job import trial_metrics

    if not is_rung(config):
        return trial_metrics(config, ctx, data)
    # Finite: Ray's TensorBoard logger warns on every infinite value (and float32 holds 1e30).
    worst = -1e30 if (ctx.objectives[0][1] if ctx.objectives else "max") == "max" else 1e30
    return {**rung_job(config, ctx, data), SCORE: worst}


def rung_points(result: dict) -> list[dict]:
    """The ``[{"point", "metrics"}, ...]`` of a rung trial's result (:func:`rung_job`); [] when it has none (a trial
    stopped before it reported)."""
    return json.loads(result["points_json"]) if result.get("points_json") else []


def _rung_metrics(trainer: StoreTrainer, rplan, full_steps: int, f: float, min_steps: int, part, labels, split: str,
                  rule, floor) -> dict:
    """One k's rung metrics: the ensemble's accuracy per seed along its curve, and member 0's floor curve."""
    from tuneall.training.trial import evaluate_members

    # The curve reaches back over the earlier rungs' evaluations too (stored: free), so the fit sees a wider range.
    evals = tuple(sorted(set().union(*(rung_evals(rung_steps(full_steps, g, min_steps)) for g in RUNGS if g <= f))
                         | set(rung_evals(rplan.steps))))
    members = trainer(rplan, part, None, evals)
    curve = [[evaluate_members(rep, labels, part.info.num_classes, s, rule,
                               **({"split": "val"} if split == "val" else {}))[0]["ensemble_acc"] for s in evals]
             for rep in members]
    diverged = any(m.diverged or m.steps_done < rplan.steps for rep in members for m in rep)
    return {"status": "diverged" if diverged else "ok", "steps": list(evals), "full_steps": full_steps,
            "rung_steps": rplan.steps, "curve": curve, "split": split, "member_steps_curve": floor[0],
            "member_curve": floor[1]}


def _first_member_curve(trainer: StoreTrainer, plan, data, labels, split: str) -> tuple[list[int], list[list[float]]]:
    """The accuracy curve of member 0 of each repeat up to its *planned* horizon at this rung (the longest of the
    architecture's rung steps: the smallest alive k's share of the rung), read at the horizon's planned evaluations
    in the last three quarters of its steps. A large-k allocation's own curve at a rung is short (tens of steps,
    often still at chance), while member 0 runs near or past that allocation's full T: :mod:`tuneall.tuning.halving`
    reads (or predicts) the single member's accuracy at T(k) as a floor for the k-member ensemble there.

    Fixed, not "however far member 0 happens to be stored" (which depends on which trial or node got there first):
    member 0 is asked of the store at exactly that horizon, so the reading is the same whichever trial reads it
    (a trial that finds it short continues it there, as the rung's longest trial would)."""
    from tuneall.training import metrics as M

    h_steps, h_evals = trainer.member_horizons[0] if trainer.member_horizons else (plan.steps, ())
    first = StoreTrainer(trainer.store, trainer.data_id, trainer.threads, [(h_steps, tuple(h_evals))],
                         models=trainer.models, grid_states=trainer.grid_states)
    first.cache = trainer.cache  # one trial: the records it has read, read once
    reps = first(replace(plan, steps=h_steps, seeds=tuple((s[0],) for s in plan.seeds)), data, None, tuple(h_evals))
    for k in ("member_steps_trained", "members_trained", "store_records_rejected"):
        trainer.counts[k] += first.counts[k]
    res = [rep[0] for rep in reps]
    if any(r.diverged or r.steps_done < h_steps for r in res):
        return [], []
    logp = [r.val_logprobs if split == "val" else r.test_logprobs for r in res]
    steps = sorted(s for s in S.needed_evals(h_steps, h_evals) if h_steps / 4 <= s <= h_steps
                   and all(s in lp for lp in logp))
    return steps, [[M.accuracy(lp[s], labels) for s in steps] for lp in logp]


__all__ = ["rung_evals", "schedule_evals", "member_horizons", "rung_job", "halving_job", "rung_points"]
