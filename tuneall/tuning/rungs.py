"""Successive halving's rung trials: each point's members trained to a fraction of the factory's T through the member
store (every member once per rung over the rung's ks of its architecture), evaluated where halving reads the curve
(:mod:`tuneall.tuning.halving`), so a later rung or the full trial continues each member instead of training it again."""

from __future__ import annotations

from dataclasses import replace

from tuneall.store import records as S
from tuneall.store.reuse import StoreTrainer, arch_key, architecture_plans, horizons, keyed_trainer
from tuneall.tuning.halving import RUNGS, rung_steps


def rung_evals(steps: int, n: int = 8) -> tuple[int, ...]:
    """A rung's evaluations: ``n`` log-spaced steps in [steps / 4, steps], where the curve has left its first
    transient (the power law of :func:`tuneall.tuning.halving.predict_full` is fitted to these)."""
    return tuple(sorted({max(1, round(steps * 2 ** (-2 * i / (n - 1)))) for i in range(n)}))


def schedule_evals(full_steps: int, min_steps: int = 1) -> set[int]:
    """Every step at which halving reads an allocation of ``full_steps`` steps: each rung's evaluations and the full
    trial's anytime curve."""
    from tuneall.training.trial import curve_steps

    out = {full_steps, *curve_steps(full_steps)}
    for f in RUNGS:
        out |= set(rung_evals(rung_steps(full_steps, f, min_steps)))
    return out


def rung_job(config: dict, ctx, data) -> dict:
    """A halving rung's trial: the point's members trained to ``fraction`` of the factory's T (each member once per
    rung over the rung's ks of this architecture), the ensemble's accuracy per seed along the way."""
    import torch

    from tuneall.data import with_fraction
    from tuneall.planning.points import plan_point
    from tuneall.training.trial import evaluate_members

    point, f = config["point"], float(config["fraction"])
    plan = plan_point(point, ctx.budget, data.info, repeats=ctx.seeds, base_seed=ctx.seed)
    train = ctx.train_config(plan.train)
    ks = ctx.reuse["ks"].get(arch_key(point)) or [point["k"]]
    full = architecture_plans(point, ks, ctx.budget, data.info, ctx.seeds, ctx.seed)
    plans = {k: replace(p, train=train, steps=rung_steps(p.steps, f, ctx.budget.min_steps)) for k, p in full.items()}
    rplan = plans[plan.k]
    # Each member is evaluated now at every step a later rung or the full trial will read below its horizon, so
    # those continue it from its stored state instead of training it again.
    later: dict[int, set] = {}
    for k, p in full.items():
        later.setdefault(plans[k].steps, set()).update(schedule_evals(p.steps, ctx.budget.min_steps))
    trainer = keyed_trainer(ctx.results_dir, data, ctx.reuse.get("ids"), torch.get_num_threads(),
                            horizons(plan.k, plans, "grid", lambda s: tuple(later[s])),
                            storage=getattr(ctx, "storage", None), root=ctx.reuse.get("store"))
    part = with_fraction(data, plan.allocation.data_fraction)
    # The curve reaches back over the earlier rungs' evaluations too (stored: free), so the fit sees a wider range.
    evals = tuple(sorted(set().union(*(rung_evals(rung_steps(plan.steps, g, ctx.budget.min_steps))
                                       for g in RUNGS if g <= f)) | set(rung_evals(rplan.steps))))
    members = trainer(rplan, part, None, evals)
    val = getattr(part, "y_val", None) is not None  # choose on validation where the data has that split
    labels = part.y_val if val else part.y_test
    curve = [[evaluate_members(rep, labels, part.info.num_classes, s, ctx.rules[0],
                               **({"split": "val"} if val else {}))[0]["ensemble_acc"] for s in evals]
             for rep in members]
    diverged = any(m.diverged or m.steps_done < rplan.steps for rep in members for m in rep)
    m_steps, m_curve = _first_member_curve(trainer, rplan, part, labels, "val" if val else "test")
    return {"status": "diverged" if diverged else "ok", "steps": list(evals), "full_steps": plan.steps,
            "rung_steps": rplan.steps, "curve": curve, "split": "val" if val else "test",
            "member_steps_curve": m_steps, "member_curve": m_curve, **trainer.counts}


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


__all__ = ["rung_evals", "schedule_evals", "rung_job"]
