"""What a search costs and how it saves: the halving searcher's rungs on the runner, and the grid-with-reuse cost
that ``tuneall plan`` quotes.

The rungs' trials are Ray Tune trials of the one runner trainable (job :func:`tuneall.tuning.rungs.rung_job`);
their results go to ``halving.jsonl`` as they finish (:mod:`tuneall.tuning.halving`), and the promoted points come back
to :mod:`tuneall.tuning.driver`, which runs them as full trials through the journal and the report.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tuneall.core.config import ALLOCATION_COLUMNS


def run_halving(cfg, data, out: Path, points: list[dict], ctx, verbose: int = 1,
                started: float | None = None) -> list[dict]:
    """Successive halving over ``points`` (feasible grid points); returns the points promoted to full trials.
    With a time budget (counted from ``started``, a ``time.monotonic()``), no rung starts once it is spent."""
    import time

    from tuneall.tuning import halving as H
    from tuneall.rundir.fsio import atomic_write_frame
    from tuneall.store.keys import warn_rejected
    from tuneall.store.reuse import reuse_ks
    from tuneall.tuning.rungs import rung_job

    ran: list[dict] = []  # this run's rung metrics: refused store records are reported once, at the end

    def run_rung(fraction: float, pts: list[dict]) -> list[dict]:
        rctx = replace(ctx, job=rung_job, reuse={**(ctx.reuse or {}), "mode": "grid", "ks": reuse_ks(pts)})
        from tuneall.runner import concurrency

        slots = concurrency(cfg, cfg.resources.cpus)
        trials = rung_trials(pts, data.info, ctx.budget, slots, fraction)
        got = {H.point_id(p): m for p, m in _run(cfg, rctx, data, out, trials, slots, fraction,
                                                 H.RUNGS.index(fraction))}
        ran.extend(got.values())
        return [got.get(H.point_id(p), {"status": "failed"}) for p in pts]

    import pandas as pd

    t0 = time.monotonic() if started is None else started
    out_of_time = (lambda: time.monotonic() - t0 >= cfg.time_budget_s) if cfg.time_budget_s else (lambda: False)
    alive, rows = H.select(points, run_rung, out, log=(lambda m: print(m, flush=True)) if verbose else
                           (lambda m: None), out_of_time=out_of_time)
    warn_rejected(ran)
    atomic_write_frame(pd.DataFrame(rows), out / "halving.csv")
    return alive


def architectures(pts: list[dict], info, budget, fraction: float | None = None) -> list[list[dict]]:
    """``pts`` by architecture (every field but k; a design-class point is its own), widest k first, the costliest
    first (:func:`_costed`), so the longest trials do not start last."""
    return [g for g, _ in _costed(pts, info, budget, fraction)]


def _costed(pts: list[dict], info, budget, fraction: float | None) -> list[tuple[list[dict], float]]:
    """(an architecture's points, widest k first; its rung's parameter-steps: each member to the longest rung steps
    of an alive k above it, as the rung trains it), the costliest first; cost 0 where it cannot be planned."""
    from tuneall.store.reuse import arch_key, architecture_plans, shared_member_steps
    from tuneall.tuning.halving import point_id, rung_steps

    groups: dict[str, list[dict]] = {}
    for p in sorted(pts, key=lambda p: -int(p["k"])):
        groups.setdefault(point_id(p) if p.get("design") else arch_key(p), []).append(p)

    def cost(g: list[dict]) -> float:
        try:
            plans = architecture_plans(g[0], [p["k"] for p in g], budget, info)
        except Exception:  # noqa: BLE001 - ordering only: the trial reports the point's own failure
            return 0.0
        steps = {k: rung_steps(p.steps, fraction or 1.0, budget.min_steps) for k, p in plans.items()}
        per = max((float(p.params_per_member) for p in plans.values()), default=0.0)
        return per * shared_member_steps(steps)

    return sorted(((g, cost(g)) for g in groups.values()), key=lambda gc: -gc[1])


def rung_trials(pts: list[dict], info, budget, slots: int = 1, fraction: float | None = None) -> list[dict]:
    """A rung's trials: one per architecture (:func:`architectures`), ``{"points": its points, "arch_ks": its
    architecture's k at this rung}``, except that an architecture costing more than a slot's fair share (``slots``:
    trials the cluster runs at once) is split into as many shares (every n-th k), and while there are fewer trials
    than slots the one with the most points is split in two. The shares of an architecture plan its members alike
    (from ``arch_ks``: the same horizons, so reuse stays exact) and train them side by side, each skipping a member
    another is training (:func:`tuneall.store.records.fetch_or_train`): an architecture that dominates a rung (often
    the only one left at a late rung) still uses the idle CPUs."""
    import math

    costed = _costed(pts, info, budget, fraction)
    total = sum(c for _, c in costed)
    trials = []
    for g, c in costed:
        n = min(len(g), max(1, math.ceil(slots * c / total - 1e-9))) if total > 0 else 1
        trials += [(g[i::n], g) for i in range(n)]
    while len(trials) < slots:
        i = max(range(len(trials)), key=lambda i: len(trials[i][0]))
        own, arch = trials[i]
        if len(own) < 2:
            break
        trials[i:i + 1] = [(own[0::2], arch), (own[1::2], arch)]
    return [{"points": own, "arch_ks": sorted(int(p["k"]) for p in arch)} for own, arch in trials]


def _run(cfg, ctx, data, out: Path, configs: list[dict], slots: int, fraction: float,
         rung: int) -> list[tuple[dict, dict]]:
    """(point, metrics) of each point of ``configs`` (:func:`rung_trials`, each run as one Ray Tune trial of the
    runner's trainable); each finished trial's points are logged to ``halving.jsonl`` the moment it finishes (a stop
    mid-rung keeps them)."""
    from ray import tune

    from tuneall.tuning._callbacks import RungLogCallback
    from tuneall.tuning.rungs import rung_points
    from tuneall.rundir.storage import ray_path
    from tuneall.runner import outcomes, run_tune, with_trial_resources

    res = cfg.resources
    # verbose=0: Ray prints nothing; the rung's one line is halving's own
    results = run_tune(with_trial_resources(ctx, data, lambda config: res.bundles(1)), name=f"halving-{fraction:.4g}",
                       storage_path=ray_path(out), concurrency=slots, max_failures=cfg.max_failures,
                       param_space={"trial": tune.grid_search(configs), "fraction": fraction},
                       callbacks=[RungLogCallback(str(out), rung, fraction)])
    # A trial stopped before it was configured has no points (only after a stop, which raises before this).
    got = []
    for _, c, m, err in outcomes(results):
        entries = [] if err else rung_points(m)
        if not entries:
            got += [(p, {"status": "failed", "error": err or "no result"}) for p in (c.get("trial") or {}).get(
                "points") or []]
        else:
            got += [(e["point"], e["metrics"]) for e in entries]
    return got


def grid_reuse_cost(feasible) -> dict:
    """Member-steps per seed of the feasible grid (a plan table: one row per point, with ``k`` and ``steps``):
    trained fresh per trial, and with member reuse (member j of an architecture trained once to the most steps any
    k > j needs, :mod:`tuneall.store.reuse`)."""
    from tuneall.store.reuse import shared_member_steps

    arch = [c for c in ALLOCATION_COLUMNS if c != "k" and c in feasible]  # every field of a point but k
    fresh = int((feasible["k"] * feasible["steps"]).sum())
    reuse = 0
    for _, g in feasible.groupby(arch, dropna=False):
        reuse += shared_member_steps(dict(zip(g["k"].astype(int), g["steps"].astype(int))))
    return {"fresh": fresh, "reuse": reuse, "points": len(feasible)}


__all__ = ["run_halving", "architectures", "rung_trials", "grid_reuse_cost"]
