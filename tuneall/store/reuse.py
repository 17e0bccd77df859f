"""Member reuse in a search: which steps each member is trained to, and the trainer that goes through the store.

For an architecture (every field of a point but k) the feasible ensemble sizes K give member j's *needs*: every
k in K with k > j reads member j at T(k) steps (and at T(k)'s anytime-curve steps). Steps come from the trial factory
only (:func:`tuneall.planning.points.plan_point` per k), never computed here.

- ``grid`` (every feasible point will be run): member j is trained once to max T(k) over k > j and evaluated at
  every needed step, so each member of the grid trains once, whichever trial reaches it first.
- ``own`` (TPE, random: later trials are unknown): a trial trains its members to its own T and evaluates them at
  every feasible k's steps up to T (and their anytime curves), so any later trial of the same architecture with more
  members reuses them (and trains only its extra members), and one with fewer members (a longer T) continues them
  from their stored state (:mod:`tuneall.store.records`) and pays only the extra steps.
- ``sweep`` (every feasible (k, budget) cell will be filled): as ``grid`` over every k and budget of the sweep
  (:func:`sweep_horizons`).
"""

from __future__ import annotations

from dataclasses import replace

from tuneall.store import records as S
from tuneall.store.replay import grid_steps

REUSE_MODES = ("grid", "own")


def architecture_plans(point: dict, k_values, budget, info, repeats: int = 1, base_seed: int = 0) -> dict:
    """k -> trial plan for every k in ``k_values`` at which the point's architecture is feasible (the factory's
    verdict); design-class points are their own architecture and get only their own k."""
    from tuneall.core.errors import ConfigError
    from tuneall.planning.factory import Infeasible
    from tuneall.planning.points import plan_point

    ks = [point["k"]] if point.get("design") else sorted({int(k) for k in k_values} | {int(point["k"])})
    out = {}
    for k in ks:
        try:
            out[k] = plan_point({**point, "k": k}, budget, info, repeats=repeats, base_seed=base_seed)
        except (Infeasible, ConfigError):
            continue
    return out


def horizons(own_k: int, plans: dict, mode: str, evals_of=None) -> list[tuple[int, tuple[int, ...]]]:
    """(steps to train, steps to evaluate) of members 0..own_k-1 of the own_k trial, given ``plans`` (k -> plan);
    ``evals_of(steps)``: the evaluations a trial of that many steps reads besides its last step (its anytime
    curve by default)."""
    from tuneall.training.trial import curve_steps

    curve_steps = evals_of or curve_steps

    if mode not in REUSE_MODES:
        raise ValueError(f"reuse mode must be one of {REUSE_MODES}, got {mode!r}")
    own = plans[own_k]

    def evals(ps) -> tuple[int, ...]:
        return tuple(sorted({s for p in ps for s in (p.steps, *curve_steps(p.steps))}))

    out = []
    for j in range(own_k):
        if mode == "grid":
            users = [p for k, p in plans.items() if k > j]
            out.append((max(p.steps for p in users), evals(users)))
        else:  # every k's evaluations up to T(own_k): a later, longer trial can then continue these members
            out.append((own.steps, tuple(s for s in evals(plans.values()) if s <= own.steps)))
    return out


class StoreTrainer:
    """A trainer for :func:`tuneall.training.trial.run_trial` (``trainer(plan, data, progress, eval_steps)``) that answers
    members from a :class:`~tuneall.store.records.MemberStore` and trains, one after another in this process, only
    those it lacks, to their horizons. ``data_id``: the fingerprint of the data the members see;
    ``member_horizons``: per member index, (steps, evaluations), from :func:`horizons` (None: the trial's own);
    ``models``: family -> fingerprint of its code, as the driver computed it (:mod:`tuneall.store.keys`)."""

    method = "sequential"

    def __init__(self, store: S.MemberStore, data_id: str, threads: int, member_horizons=None,
                 snapshot_steps=(), models: dict | None = None, grid_states: bool = False):
        self.store, self.data_id, self.threads, self.member_horizons = store, data_id, threads, member_horizons
        # Whole states on the budget-independent grid (tuneall.store.replay) make a record about 10x larger; they
        # pay only where other runs, at other budgets, read the store: a shared one (--member-store DIR).
        self.grid_states = grid_states
        self.models = dict(models or {})
        self.snapshot_steps = tuple(sorted(set(snapshot_steps)))  # trials' own T: their weights kept in the store
        # kid -> the records this trainer has read or written, without their states: one trial reads each once
        # (a rung's k of one architecture share members), and a stored record only ever grows.
        self.cache: dict = {}
        self.counts = {"member_steps_trained": 0, "member_steps_reused": 0, "members_trained": 0,
                       "members_reused": 0, "store_records_rejected": 0, "member_steps_replayed": 0}

    def key(self, plan, seed: int) -> dict:
        import torch

        from tuneall.store.keys import model_id

        a = plan.allocation
        return S.member_key(family=a.family, width=a.width, depth=plan.depth, train=plan.train,
                            data_fraction=a.data_fraction, seed=seed, data_id=self.data_id, threads=self.threads,
                            method=self.method, device=plan.train.device, torch_version=torch.__version__,
                            model_id=model_id({"models": self.models}, a.family))

    def __call__(self, plan, data, progress=None, eval_steps=()):
        from tuneall.training.member import MemberResult, train_member

        a = plan.allocation
        requests = []
        for seeds in plan.seeds:
            for i, seed in enumerate(seeds):
                h_steps, h_evals = self.member_horizons[i] if self.member_horizons else (plan.steps, ())
                requests.append(S.Request(self.key(plan, seed), seed, plan.steps, tuple(eval_steps), h_steps,
                                          tuple(h_evals) + tuple(eval_steps)))

        def train(seed, steps, evals, start=None):
            # Weights at every trial's T in snapshot_steps (the trial's own among them) are kept on the way, and
            # (a shared store) whole states on the budget-independent grid that later runs replay from.
            first = int(start["step"]) if start else 0
            return train_member(a.family, a.width, plan.depth, data, steps, seed, plan.train, evals,
                                start=start, keep_state=True,
                                snapshot_steps=tuple(t for t in self.snapshot_steps if t <= steps),
                                checkpoint_steps=tuple(s for s in grid_steps(steps) if s > first)
                                if self.grid_states else ())

        flat, counts = S.fetch_or_train(self.store, requests, train, MemberResult, cache=self.cache)
        for k, v in counts.items():
            self.counts[k] += v
        out, n = [], 0
        for r, seeds in enumerate(plan.seeds):
            out.append(flat[n:n + len(seeds)])
            if progress:
                for i, res in enumerate(out[-1]):
                    progress(r, i, res)
            n += len(seeds)
        return out


def store_trainer(results_dir, point: dict, plan, data, threads: int, k_values, mode: str, budget,
                  repeats: int, base_seed: int, ids: dict | None = None, storage=None, root=None) -> StoreTrainer:
    """The store trainer of one search trial: its members' horizons over the architecture's feasible k (``ids``:
    the run's fingerprints, :func:`tuneall.store.keys.run_ids`; ``storage``: how the trial reaches the results
    directory, :mod:`tuneall.store.backend`; ``root``: the store's folder, default the results directory's own)."""
    plans = architecture_plans(point, k_values, budget, data.info, repeats, base_seed)
    plans = {k: replace(p, train=plan.train) for k, p in plans.items()}  # the trial's runtime recipe (device)
    plans[plan.k] = plan
    return keyed_trainer(results_dir, data, ids, threads, horizons(plan.k, plans, mode), storage=storage,
                         root=root, snapshot_steps={p.steps for p in plans.values()})


def keyed_trainer(results_dir, data, ids: dict | None, threads: int, member_horizons=None, storage=None,
                  root=None, **kw) -> StoreTrainer:
    """A StoreTrainer on ``results_dir``'s store, or the folder ``root`` (a store shared across runs:
    :mod:`tuneall.store.shared`), reached through ``storage``, keyed by the run's fingerprints (``ids``; computed here
    without them)."""
    from tuneall.store.backend import open_store
    from tuneall.store.keys import data_id

    return StoreTrainer(open_store(results_dir, storage, root), data_id(ids, data), threads, member_horizons,
                        models=(ids or {}).get("models"), grid_states=root is not None, **kw)





def shared_member_steps(steps: dict[int, int]) -> int:
    """Member-steps (per seed) of an architecture whose k-member trials train ``steps[k]`` steps each, with member
    j trained once to the most steps any k > j needs: what the store makes the grid of these k cost."""
    return sum(max(t for k, t in steps.items() if k > j) for j in range(max(steps, default=0)))


def arch_key(point: dict) -> str:
    """An architecture's identity: every field of a point but k (and Optuna's ``*_index`` helpers)."""
    import json

    return json.dumps({k: v for k, v in sorted(point.items()) if k != "k" and not k.endswith("_index")},
                      default=str)


def reuse_ks(points: list[dict]) -> dict[str, list[int]]:
    """architecture key -> the ensemble sizes of ``points`` with that architecture (a grid's, or a rung's)."""
    out: dict[str, set] = {}
    for p in points:
        out.setdefault(arch_key(p), set()).add(int(p["k"]))
    return {a: sorted(ks) for a, ks in out.items()}


def for_trial(ctx, point: dict, plan, data) -> StoreTrainer | None:
    """The store trainer of a search trial, or None where the store is off or cannot be exact (members trained
    vectorised or as parallel Ray tasks: their floats depend on the grouping)."""
    import torch

    res = ctx.resources
    if not ctx.reuse or not ctx.results_dir or res.parallel_members or res.members != "sequential" or res.amp:
        return None
    ks = ctx.reuse["ks"].get(arch_key(point)) or ctx.reuse["ks"].get(point["family"]) or [point["k"]]
    return store_trainer(ctx.results_dir, point, plan, data, torch.get_num_threads(), ks, ctx.reuse["mode"],
                         ctx.budget, ctx.seeds, ctx.seed, ctx.reuse.get("ids"), getattr(ctx, "storage", None),
                         ctx.reuse.get("store"))


def sweep_horizons(point: dict, ks, budgets, unit: str, min_steps: int, info, repeats: int, base_seed: int,
                   own_k: int) -> list[tuple[int, tuple[int, ...]]]:
    """Members 0..own_k-1's horizons in a sweep: member i is trained to the most steps any cell (k > i, budget) of
    its architecture needs and evaluated at every such cell's steps, so each member of an architecture is trained
    once for the whole sweep, whichever job reaches it first."""
    from tuneall.core.budget import Budget

    cells: dict[int, set] = {}
    for c in budgets:
        for k, p in architecture_plans(point, ks, Budget(c, unit, min_steps), info, repeats, base_seed).items():
            cells.setdefault(k, set()).add(p.steps)
    out = []
    for i in range(own_k):
        steps = set().union(*(s for k, s in cells.items() if k > i))
        out.append((max(steps), tuple(sorted(steps))))
    return out


def sweep_trainer(ctx, point: dict, top, data) -> StoreTrainer | None:
    """The store trainer of a sweep job (``top``: its plan at its largest budget; ``data``: exactly what its
    members see), or None where the store is off or cannot be exact (as :func:`for_trial`)."""
    import torch

    res = ctx.resources
    if (not ctx.reuse or ctx.reuse.get("mode") != "sweep" or not ctx.results_dir or res.parallel_members
            or res.members != "sequential" or res.amp):
        return None
    ks = ctx.reuse["ks"].get(arch_key(point)) or [point["k"]]
    # Keyed by the fingerprint of exactly the data its members see (a per-seed subset's seed is not in the key);
    # the model code's fingerprints are the driver's.
    ids = {**(ctx.reuse.get("ids") or {}), "data": None}
    return keyed_trainer(ctx.results_dir, data, ids, torch.get_num_threads(),
                         sweep_horizons(point, ks, ctx.reuse["budgets"], ctx.unit, ctx.min_steps, data.info,
                                        ctx.seeds, ctx.seed, top.k), storage=getattr(ctx, "storage", None),
                         root=ctx.reuse.get("store"))


__all__ = ["REUSE_MODES", "architecture_plans", "horizons", "StoreTrainer", "store_trainer", "arch_key", "reuse_ks",
           "for_trial", "sweep_horizons", "sweep_trainer", "shared_member_steps"]
