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
        configs = [{"point": p, "fraction": fraction} for p in sorted(pts, key=lambda p: -int(p["k"]))]
        got = {H.point_id(c["point"]): m for c, m in _run(cfg, rctx, data, out, configs, fraction,
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


def _run(cfg, ctx, data, out: Path, configs: list[dict], fraction: float, rung: int) -> list[tuple[dict, dict]]:
    """(config, metrics) of each config run as a Ray Tune trial of the runner's trainable; each finished one is
    logged to ``halving.jsonl`` the moment it finishes (a stop mid-rung keeps it)."""
    from ray import tune

    from tuneall.tuning._callbacks import RungLogCallback
    from tuneall.rundir.storage import ray_path
    from tuneall.runner import concurrency, outcomes, run_tune, with_trial_resources

    res = cfg.resources
    # verbose=0: Ray prints nothing; the rung's one line is halving's own
    results = run_tune(with_trial_resources(ctx, data, lambda config: res.bundles(1)), name=f"halving-{fraction:.4g}",
                       storage_path=ray_path(out), concurrency=concurrency(cfg, res.cpus), max_failures=cfg.max_failures,
                       param_space={"point": tune.grid_search([c["point"] for c in configs]), "fraction": fraction},
                       callbacks=[RungLogCallback(str(out), rung, fraction)])
    # A trial stopped before it was configured has no point (only after a stop, which raises before this).
    return [(c, m if not err else {"status": "failed", "error": err}) for _, c, m, err in outcomes(results)
            if "point" in c]


def grid_reuse_cost(feasible) -> dict:
    """Member-steps per seed of the feasible grid (a plan table: one row per point, with ``k`` and ``steps``):
    trained fresh per trial, and with member reuse (member j of an architecture trained once to the most steps any
    k > j needs, :mod:`tuneall.store.reuse`)."""
    arch = [c for c in ALLOCATION_COLUMNS if c != "k" and c in feasible]  # every field of a point but k
    fresh = int((feasible["k"] * feasible["steps"]).sum())
    reuse = 0
    for _, g in feasible.groupby(arch, dropna=False):
        steps = dict(zip(g["k"].astype(int), g["steps"].astype(int)))
        reuse += sum(max(t for k, t in steps.items() if k > j) for j in range(max(steps)))
    return {"fresh": fresh, "reuse": reuse, "points": len(feasible)}


__all__ = ["run_halving", "grid_reuse_cost"]
