"""What a search costs and how it saves: the halving searcher's rungs on the runner, and the grid-with-reuse cost
that ``tuneall plan`` quotes.

The rungs' trials and the promoted points' full trials are trials of one Ray Tune run of the runner's trainable
(job :func:`tuneall.tuning.rungs.halving_job`), suggested by :class:`tuneall.tuning._searchers.Halving`: rung
results go to ``halving.jsonl`` as each trial finishes (:mod:`tuneall.tuning.halving`), full trials to the journal and
the report, as every search's do.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuneall.core.config import ALLOCATION_COLUMNS


def halving_searcher(cfg, data, out: Path, points: list[dict], done_keys: set, reuse: bool, verbose: int = 1,
                     started: float | None = None, expected_trial_s: float | None = None, on_promoted=None):
    """Successive halving over ``points`` (feasible grid points, widest k first) as the Ray Tune searcher of the
    search's one run (:class:`tuneall.tuning._searchers.Halving`): the rungs' trials, then the promoted points not
    in the journal (``done_keys``) as full trials, each carrying the k whose members are planned together
    (``reuse``: the member store is on). With a time budget (counted from ``started``, a ``time.monotonic()``), no
    rung starts once it is spent and the full trials stop as a grid's do. ``on_promoted(n)``: told how many full
    trials the search has in all (finished ones included) once the rungs have decided."""
    import time

    from tuneall.rundir import journal
    from tuneall.store.keys import warn_rejected
    from tuneall.store.reuse import reuse_ks
    from tuneall.tuning import halving as H
    from tuneall.tuning._searchers import Halving, Points, TimeBudget
    from tuneall.runner import concurrency

    ran: list[dict] = []  # this run's rung metrics: refused store records are reported once, at the end
    slots = concurrency(cfg, cfg.resources.cpus)

    def rung_configs(fraction: float, pts: list[dict]) -> list[dict]:
        return [{"trial": t, "fraction": fraction} for t in rung_trials(pts, data.info, cfg.budget, slots, fraction)]

    def log_points(rung: int, fraction: float, entries: list[dict]) -> None:
        for e in entries:
            ran.append(e["metrics"])
            H.append_log(out, {"rung": rung, "fraction": fraction, "point": e["point"], "metrics": e["metrics"]})

    def full(alive: list[dict], rows: list[dict]):
        import pandas as pd

        from tuneall.rundir.fsio import atomic_write_frame

        warn_rejected(ran)
        atomic_write_frame(pd.DataFrame(rows), out / "halving.csv")
        alive = sorted(alive, key=lambda p: -int(p["k"]))  # widest ensembles first: they train most members at once
        if on_promoted:
            on_promoted(len(alive))
        todo = [p for p in alive if journal.point_key(p) not in done_keys]
        # The promoted k are known only now: the full trials plan their members over them (tuneall.store.reuse).
        inner = Points(todo, extra={"reuse_ks": json.dumps(reuse_ks(alive))} if reuse else None)
        return TimeBudget(inner, cfg.time_budget_s, expected_trial_s, start=started) if cfg.time_budget_s else inner

    t0 = time.monotonic() if started is None else started
    out_of_time = (lambda: time.monotonic() - t0 >= cfg.time_budget_s) if cfg.time_budget_s else (lambda: False)
    steps = H.selection(points, out, log=(lambda m: print(m, flush=True)) if verbose else (lambda m: None),
                        out_of_time=out_of_time)
    return Halving(steps, rung_configs, log_points, full)


def most_trials(points: list[dict]) -> int:
    """An upper bound on the trials of a halving search over ``points``: at most one per point at each rung
    (:func:`rung_trials` never gives a trial no point) and one full trial per point."""
    from tuneall.tuning.halving import RUNGS

    return len(points) * (len(RUNGS) + 1)


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


__all__ = ["halving_searcher", "most_trials", "architectures", "rung_trials", "grid_reuse_cost"]
