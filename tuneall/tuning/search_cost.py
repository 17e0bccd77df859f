"""What a search costs and how it saves: the halving searcher's rungs on the runner, and the grid-with-reuse cost
that ``tuneall plan`` quotes.

The rungs' trials are Ray Tune trials of the one runner trainable (job :func:`tuneall.tuning.rungs.rung_job`);
their results go to ``halving.jsonl`` as they finish (:mod:`tuneall.tuning.halving`), and the promoted points come back
to :mod:`tuneall.tuning.driver`, which runs them as full trials through the journal and the report.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path


def run_halving(cfg, data, out: Path, points: list[dict], ctx, verbose: int = 1) -> list[dict]:
    """Successive halving over ``points`` (feasible grid points); returns the points promoted to full trials."""
    from tuneall.tuning import halving as H
    from tuneall.rundir.fsio import atomic_write_frame
    from tuneall.store.keys import warn_rejected
    from tuneall.store.reuse import reuse_ks
    from tuneall.tuning.rungs import rung_job

    ran: list[dict] = []  # this run's rung metrics: refused store records are reported once, at the end

    def run_rung(fraction: float, pts: list[dict]) -> list[dict]:
        rctx = replace(ctx, job=rung_job, reuse={**(ctx.reuse or {}), "mode": "grid", "ks": reuse_ks(pts)})
        configs = [{"point": p, "fraction": fraction} for p in sorted(pts, key=lambda p: -int(p["k"]))]
        got = {H.point_id(c["point"]): m for c, m in _run(cfg, rctx, data, out, configs, fraction)}
        ran.extend(got.values())
        return [got.get(H.point_id(p), {"status": "failed"}) for p in pts]

    import pandas as pd

    alive, rows = H.select(points, run_rung, out, log=(lambda m: print(m, flush=True)) if verbose else
                           (lambda m: None))
    warn_rejected(ran)
    atomic_write_frame(pd.DataFrame(rows), out / "halving.csv")
    return alive


def _run(cfg, ctx, data, out: Path, configs: list[dict], fraction: float) -> list[tuple[dict, dict]]:
    """(config, metrics) of each config run as a Ray Tune trial of the runner's trainable."""
    from ray import tune

    from tuneall.runner import concurrency, outcomes, run_tune, with_trial_resources

    res = cfg.resources
    # verbose=0: Ray prints nothing; the rung's one line is halving's own
    results = run_tune(with_trial_resources(ctx, data, lambda config: res.bundles(1)), name=f"halving-{fraction:.4g}",
                       storage_path=str(out), concurrency=concurrency(cfg, res.cpus), max_failures=cfg.max_failures,
                       param_space={"point": tune.grid_search([c["point"] for c in configs]), "fraction": fraction})
    return [(c, m if not err else {"status": "failed", "error": err}) for _, c, m, err in outcomes(results)]


def grid_reuse_cost(feasible) -> dict:
    """Member-steps per seed of the feasible grid (a plan table: one row per point, with ``k`` and ``steps``):
    trained fresh per trial, and with member reuse (member j of an architecture trained once to the most steps any
    k > j needs, :mod:`tuneall.store.reuse`)."""
    arch = [c for c in ("family", "width", "depth", "data_fraction", "design", "lr", "momentum", "batch_size",
                        "optimizer", "weight_decay", "label_smoothing") if c in feasible]
    fresh = int((feasible["k"] * feasible["steps"]).sum())
    reuse = 0
    for _, g in feasible.groupby(arch, dropna=False):
        steps = dict(zip(g["k"].astype(int), g["steps"].astype(int)))
        reuse += sum(max(t for k, t in steps.items() if k > j) for j in range(max(steps)))
    return {"fresh": fresh, "reuse": reuse, "points": len(feasible)}


__all__ = ["run_halving", "grid_reuse_cost"]
