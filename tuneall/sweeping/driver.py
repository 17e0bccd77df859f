"""``tuneall sweep``: the allocation study over several budgets, at about the cost of the largest one.

Anytime reuse. Under seed 000's fixed learning rate and no schedule, a member trained for T steps passes through
every T' < T, and ``train_member(eval_steps=...)`` evaluates it there. The ensemble of k members at step T' is the
allocation (k, w, T') of a budget C' with T' = floor(C' / (k P)), so each allocation is trained once, at the largest
budget of the sweep (the most steps; feasibility only grows with C), and every smaller budget's cell is filled from
that run. Member seeds depend on (repeat, member) only, never on the budget, so a reused cell equals a fresh run of
that allocation with the same seeds (tests/test_sweep.py checks it bit for bit). With the member store (the
default) members go further: member j of every k of an architecture is one member, trained once to the most steps any
(k, budget) cell needs of it and evaluated at each (tuneall.store.reuse.sweep_horizons).

A data fraction keeps reuse exact: it selects a fixed seeded subset, independent of T, and batches are slices of a
seeded sequence of permutations of that subset, so the first T' batches of a T-step run are those of a T'-step run.
An LR schedule tied to the total steps would break it: :func:`reuse_blocker` names such a setting, and the sweep
falls back to fresh runs per budget (as with ``reuse=False``) and says so in ``sweep.json`` and the summary.

Trials are Ray Tune trials (a grid over the jobs), so a sweep runs on a cluster like a search does.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path

import pandas as pd

from tuneall.sweeping.progress import answer_lines
from tuneall.rundir import results as R
from tuneall.core.budget import DEFAULT_MIN_STEPS, DEFAULT_UNIT, Budget, parse_budget
from tuneall.core.errors import BudgetError, ConfigError
from tuneall.core.config import check_rule
from tuneall.planning.factory import Infeasible
from tuneall.runner import RunOptions, TrialContext
from tuneall.store.backend import serving
from tuneall.store.shared import check_member_store, store_root
from tuneall.planning.space import SearchSpace, grid


def parse_budgets(spec) -> tuple[float, ...]:
    """'1e8,3e8,1e9' or 'LOW:HIGH:N' (N log-spaced budgets, ends included) -> sorted budgets; BudgetError if bad."""
    if not isinstance(spec, str):
        values = [parse_budget(v) for v in spec]
    elif ":" in spec:
        parts = spec.split(":")
        if len(parts) != 3:
            raise BudgetError(f"--budgets range must be LOW:HIGH:N such as 1e8:1e10:5, but got {spec!r}")
        lo, hi = parse_budget(parts[0].strip()), parse_budget(parts[1].strip())
        try:
            n = int(parts[2].strip())
        except ValueError:
            raise BudgetError(f"--budgets range LOW:HIGH:N needs an integer N, but got N={parts[2]!r}") from None
        if n < 2 or hi <= lo:
            raise BudgetError(f"--budgets range LOW:HIGH:N needs LOW < HIGH and N >= 2, but got {spec!r}")
        # 6 significant digits: readable names, and the exact ends the user typed.
        values = [lo] + [float(f"{lo * (hi / lo) ** (i / (n - 1)):.6g}") for i in range(1, n - 1)] + [hi]
    else:
        values = [parse_budget(v.strip()) for v in spec.split(",") if v.strip()]
    if len(set(values)) != len(values):
        raise BudgetError(f"--budgets lists a budget twice: {spec!r}")
    if len(values) < 2:
        raise BudgetError(f"a sweep needs at least 2 budgets, but got {len(values)} ({spec!r}); use `search` for one")
    return tuple(sorted(values))


def reuse_blocker(train) -> str | None:
    """Why anytime reuse would not be exact for this recipe (None: it is exact, see ``TrainConfig.anytime_exact``)."""
    if getattr(train, "anytime_exact", True):
        return None
    return "the recipe's learning rate depends on the total steps, so a shorter run is not a prefix of a longer one"


@dataclass(frozen=True, kw_only=True)
class SweepConfig(RunOptions):
    budgets: tuple[float, ...]
    space: SearchSpace | None = None  # the grid of allocations (every grid point is a candidate)
    points: tuple[dict, ...] | None = None  # or explicit points (e.g. seed 001's design pairs)
    unit: str = DEFAULT_UNIT
    min_steps: int = DEFAULT_MIN_STEPS
    rules: tuple[str, ...] = ("mean",)  # the first is the primary rule of the per-budget reports
    reuse: bool = True
    # Members answered from / recorded in the results directory's member_store/ across jobs (each member of an
    # architecture trained once for the whole sweep: tuneall.store.reuse.sweep_horizons); only with reuse. True: the
    # results directory's own store; a folder: a store shared across runs (tuneall.store.shared).
    member_store: bool | str = True
    per_budget_reports: bool = True
    # A data fraction < 1 draws repeat r's subset with its own seed (repeat r's first member seed), so the spread
    # over seeds includes the choice of subset; False: one subset (fraction seed 0) for every repeat.
    subset_per_seed: bool = True

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "budgets", parse_budgets(list(self.budgets)))
        object.__setattr__(self, "member_store", check_member_store(self.member_store))
        for c in self.budgets:
            Budget(c, self.unit, self.min_steps)  # unit and min_steps validated once, with the project's messages
        if (self.space is None) == (self.points is None):
            raise ConfigError("a sweep needs exactly one of space or points")
        if not self.rules:
            raise ConfigError("a sweep needs at least one combination rule")
        for r in self.rules:
            check_rule(r)

    def default_name(self) -> str:
        label = self.space.name if self.space is not None else "points"
        return f"sweep-{self.dataset_label}-{self.budgets[0]:.3g}-{self.budgets[-1]:.3g}-{label}"

    def to_json(self) -> dict:
        """The config as ``tuneall.json``/``sweep.json`` record it (the space as its name and YAML)."""
        conf = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("space", "points")}
        conf = json.loads(json.dumps({k: asdict(v) if is_dataclass(v) else v for k, v in conf.items()}, default=str))
        conf["space"] = ({"name": self.space.name, "yaml": self.space.source} if self.space is not None
                         else {"name": "points", "yaml": None})
        if self.points is not None:
            conf["points"] = json.loads(json.dumps(list(self.points), default=str))
        return conf


def _points(cfg: SweepConfig) -> list[dict]:
    pts = list(cfg.points) if cfg.points is not None else grid(cfg.space)
    seen, out = set(), []
    for p in pts:
        key = json.dumps(p, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(dict(p))
    return out


def plan_sweep(cfg: SweepConfig) -> tuple[list[dict], pd.DataFrame]:
    """(jobs, cells): the Ray Tune jobs (a point and the budgets one training run fills) and the planned cells,
    feasible or with the reason. With reuse a point is one job over every budget where it is feasible; without,
    one job per (point, budget)."""
    from tuneall.data import dataset_info
    from tuneall.planning.points import plan_point

    info = dataset_info(cfg.dataset, cfg.val_fraction)
    if cfg.space is not None:
        from tuneall.planning.points import check_space_families

        check_space_families(cfg.space, info)  # a broken user factory: one line before any job
    jobs, cells = [], []
    for point in _points(cfg):
        feasible = []
        for c in cfg.budgets:
            try:
                plan = plan_point(point, Budget(c, cfg.unit, cfg.min_steps), info, repeats=cfg.seeds)
            except (Infeasible, ConfigError) as e:
                cells.append({**point, "budget": c, "feasible": False, "reason": str(e)})
                continue
            cost = plan.k * cfg.seeds * plan.steps
            cells.append({**point, **plan.row(), "budget": c, "feasible": True, "member_steps": cost, "reason": ""})
            feasible.append((c, cost))
        if feasible and cfg.reuse and reuse_blocker(_train_of(point)) is None:
            top = max(m for _, m in feasible)  # trained once, at the largest budget where it is feasible
            jobs.append({"point": point, "budgets": [c for c, _ in feasible], "member_steps": top,
                         "subset_per_seed": cfg.subset_per_seed})
        else:
            jobs += [{"point": point, "budgets": [c], "member_steps": m, "subset_per_seed": cfg.subset_per_seed}
                     for c, m in feasible]
    if not jobs:
        listed = ", ".join(f"{c:.4g}" for c in cfg.budgets)
        raise BudgetError(f"no allocation is feasible at any of the budgets {listed} {cfg.unit} with at least "
                          f"{cfg.min_steps} steps per member; raise the budgets")
    jobs.sort(key=lambda j: -j["member_steps"])  # longest first: better packing of the trials
    return jobs, pd.DataFrame(cells)


def _train_of(point: dict):
    from tuneall.planning.points import point_to_allocation

    return point_to_allocation(point)[1]


def run_job(job: dict, ctx: TrialContext, data) -> dict:
    """Train a job's members once, at its largest budget's steps, and evaluate every budget's cell from that run."""
    from tuneall.data import with_fraction
    from tuneall.planning.points import plan_point
    from tuneall.store.reuse import sweep_trainer
    from tuneall.training.trainers import select_trainer
    from tuneall.training.trial import evaluate_splits

    point = job["point"]
    plans = {c: plan_point(point, Budget(c, ctx.unit, ctx.min_steps), data.info, repeats=ctx.seeds,
                           base_seed=ctx.seed) for c in job["budgets"]}
    top = max(plans.values(), key=lambda p: p.steps)
    # What makes a reused cell exact: its members have the seeds a fresh run at that budget would have.
    assert all(p.seeds == top.seeds and p.allocation == top.allocation for p in plans.values())
    train = ctx.train_config(top.train)
    a, evals = top.allocation, tuple(sorted({p.steps for p in plans.values()}))
    plain = select_trainer(ctx.resources.members, ctx.resources.amp)
    stores = []

    def trainer(plan, part):
        """The member store's trainer for exactly this data (None: off), else the plain one."""
        store = sweep_trainer(ctx, point, top, part)
        stores.extend([store] if store else [])
        return (store or plain)(plan, part, None, evals)

    per_seed = a.data_fraction < 1 and job.get("subset_per_seed", False)
    if per_seed:
        # Repeat r's subset is drawn with repeat r's first member seed (the same for every allocation, so repeats
        # stay paired; within a repeat the subsets of different fractions stay nested, see data.with_fraction).
        members = [trainer(replace(top, train=train, seeds=(seeds,)),
                           with_fraction(data, a.data_fraction, fraction_seed=seeds[0]))[0]
                   for seeds in top.seeds]
    else:
        members = trainer(replace(top, train=train), with_fraction(data, a.data_fraction))
    part = with_fraction(data, a.data_fraction)  # members[repeat][i]; the test split and size are every subset's
    flat = [m for rep in members for m in rep]
    per_epoch = max(1, len(part.x_train) // min(train.batch_size, len(part.x_train)))
    base = {"base_width": point["width"], "base_depth": point.get("depth")} if point.get("design") else {}
    rows = []
    for c, p in plans.items():
        for rule in ctx.rules:
            for r, results in enumerate(members):
                ens, _ = evaluate_splits(results, part, p.steps, rule)  # test and val_ metrics
                missing = sum(p.steps not in m.test_logprobs for m in results)  # diverged at or before T'
                rows.append({**p.row(), **base, "rule": rule, "repeat": r, "status": "diverged" if missing else "ok",
                             "n_diverged": missing, "epochs": p.steps / per_epoch, "trained_steps": top.steps,
                             "reused": p.steps < top.steps,
                             "fraction_seed": top.seeds[r][0] if per_seed else 0, **ens,
                             # members train one after another: a cell's share of the run is its share of the steps
                             "train_time_s": sum(m.train_time_s for m in results) * p.steps / top.steps})
    trained = (sum(t.counts["member_steps_trained"] for t in stores) if stores
               else sum(m.steps_done for m in flat))
    return {"status": "ok", "member_steps": trained,
            "member_steps_reused": sum(t.counts["member_steps_reused"] for t in stores),
            "member_steps_replayed": sum(t.counts["member_steps_replayed"] for t in stores),
            "store_records_rejected": sum(t.counts["store_records_rejected"] for t in stores),
            "planned_member_steps": len(flat) * top.steps, "trained_steps": top.steps, "budgets_filled": len(plans),
            "train_time_s": sum(m.train_time_s for m in flat), "cells_json": json.dumps(rows, default=str)}


def sweep_job(config: dict, ctx: TrialContext, data) -> dict:
    """The sweep's job as the runner calls it: the trial's config holds one job."""
    return run_job(config["job"], ctx, data)


def run_sweep(cfg: SweepConfig, argv: list[str] | None = None, verbose: int = 1) -> Path:
    """Run the sweep (Ray Tune trials, or the local executor) and write the results directory; returns its path."""
    from tuneall.data import check_batch_sizes, load_dataset
    from tuneall.rundir.fsio import atomic_write_frame
    from tuneall.runner import check_local_fits, check_ray_options, ray_session
    from tuneall.store.keys import warn_rejected
    from tuneall.sweeping.report import build_sweep_report, write_budget_reports
    from tuneall.training.sanity import check_verbose

    check_verbose(verbose)  # before anything is created or Ray starts
    out = cfg.results_dir
    R.check_storage(cfg.storage_path)
    R.check_new(out)
    jobs, planned = plan_sweep(cfg)  # user errors before Ray starts or anything is written
    blockers = {b for b in (reuse_blocker(_train_of(j["point"])) for j in jobs) if b}
    check_ray_options(cfg)
    if cfg.executor == "ray":
        check_local_fits(cfg, cfg.resources.bundles(1))
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction)
    check_batch_sizes(planned[planned["feasible"]] if len(planned) else planned, data)
    t0 = time.perf_counter()
    meta = {**R.provenance(cfg.to_json(), argv, kind="sweep"), "data": R.data_facts(data.info),
            "torch_threads_per_trial": cfg.resources.threads}
    with R.owned(out):  # one process per results directory, until the state is written last
        store = store_root(out, cfg.member_store) if cfg.member_store and cfg.reuse else None
        with ray_session(cfg), serving(out, cfg.address, verbose, store):  # no Ray (local executor): this disk
            results = _fit(cfg, jobs, data, out, verbose, meta)
        wall = time.perf_counter() - t0
        cells, job_rows = _collect(results)
        warn_rejected([m for _, _, m, _ in results])
        atomic_write_frame(cells, out / R.CELLS)
        atomic_write_frame(cells, out / R.CELLS_PARQUET)
        atomic_write_frame(pd.DataFrame(job_rows), out / R.JOBS)
        atomic_write_frame(planned, out / R.PLANNED_CELLS)
        if cfg.points is not None:
            meta["config"]["points"] = list(cfg.points)
        meta["sweep"] = _facts(cfg, jobs, job_rows, planned, blockers, wall)
        R.write_json(out / R.SWEEP_META, meta)
        if cfg.per_budget_reports:
            write_budget_reports(out, cells, planned, meta)
        tables = build_sweep_report(out)
        R.write_meta(out, meta, "complete")  # last: a complete directory has its report
    m = meta["sweep"]
    print(f"tuneall: {m['reuse_note']}: {m['member_steps_trained']:,} member-steps trained"
          + (f", {m['member_steps_reused']:,} answered from the member store" if m["member_store"] else "")
          + f" (largest budget alone: {m['member_steps_largest_budget']:,}; fresh at every budget: "
          f"{m['member_steps_without_reuse']:,})", flush=True)
    print("\n".join(answer_lines(tables, cfg.unit)), flush=True)  # the sweep's answer, last
    return out


def _facts(cfg: SweepConfig, jobs, job_rows, planned, blockers, wall: float) -> dict:
    """``sweep.json``'s account of the sweep: how cells were reused and the member-steps that cost."""
    feas = planned[planned["feasible"]]
    top = feas[feas["budget"] == feas["budget"].max()]
    reused = cfg.reuse and not blockers
    return {
        "budgets": list(cfg.budgets), "jobs": len(jobs), "reuse": reused,
        "reuse_note": (("anytime reuse and the member store: each member of an architecture trained once for every k "
                        "and budget" if cfg.member_store else
                        "anytime reuse: each allocation trained once at its largest feasible budget") if reused
                       else "fresh runs per budget: " + ("; ".join(sorted(blockers)) if blockers else "reuse=False")),
        "member_store": bool(cfg.member_store and reused),
        "member_steps_trained": int(sum(j.get("member_steps", 0) or 0 for j in job_rows)),
        "member_steps_reused": int(sum(j.get("member_steps_reused", 0) or 0 for j in job_rows)),
        # trained again from a stored grid state for an evaluation another run never made (tuneall.store.replay)
        "member_steps_replayed": int(sum(j.get("member_steps_replayed", 0) or 0 for j in job_rows)),
        "member_steps_largest_budget": int(top["member_steps"].sum()),
        "member_steps_without_reuse": int(feas["member_steps"].sum()),
        "wall_time_s": wall, "failed_jobs": int(sum(j["status"] != "ok" for j in job_rows)),
    }


def _context(cfg: SweepConfig, jobs: list[dict], exact: bool) -> TrialContext:
    """The jobs' context; ``exact``: anytime reuse is exact for every job (then the member store may serve, keyed
    by fingerprints of the model code and the data: tuneall.store.keys)."""
    from tuneall.store.keys import family_fingerprint
    from tuneall.store.reuse import reuse_ks
    from tuneall.models.flops import flop_table
    from tuneall.runner import ship_families
    from tuneall.store.backend import current

    store = cfg.member_store and cfg.reuse and exact
    return TrialContext(job=sweep_job, resources=cfg.resources, seeds=cfg.seeds, seed=cfg.seed, rules=cfg.rules,
                        unit=cfg.unit, min_steps=cfg.min_steps, families=ship_families(), flops=flop_table(),
                        results_dir=str(cfg.results_dir) if store else None,
                        reuse={"mode": "sweep", "ks": reuse_ks([j["point"] for j in jobs]),
                               "budgets": list(cfg.budgets),
                               "store": str(store_root(cfg.results_dir, cfg.member_store)),
                               # the model code's fingerprints (a job keys its members by the data it trains on)
                               "ids": {"models": {f: family_fingerprint(f) for f in
                                                  sorted({j["point"]["family"] for j in jobs})}}}
                        if store else None, storage=current())


def _fit(cfg: SweepConfig, jobs: list[dict], data, out: Path, verbose: int, meta: dict) -> list[tuple]:
    from tuneall.runner import check_fits, concurrency, outcomes, run_local, run_tune, with_trial_resources

    exact = not any(reuse_blocker(_train_of(j["point"])) for j in jobs)
    res, ctx = cfg.resources, _context(cfg, jobs, exact)
    if cfg.executor == "ray":
        check_fits(res.bundles(1))
    out.mkdir(parents=True, exist_ok=True)  # made by the lock
    R.write_meta(out, meta, "running")
    at_once = concurrency(cfg, res.cpus)
    print(f"tuneall: sweeping {len(cfg.budgets)} budgets {cfg.budgets[0]:.3g}..{cfg.budgets[-1]:.3g} {cfg.unit} on "
          f"{cfg.dataset}: {len(jobs)} trials ({'anytime reuse' if cfg.reuse else 'fresh per budget'}), "
          f"{at_once} at a time, {cfg.seeds} seed(s) each -> {R.storage.display(out)}", flush=True)
    if cfg.address is None and res.gpus == 0:
        _print_estimate(cfg, jobs, data.info, at_once)
    configs = [{"job": j} for j in jobs]
    if cfg.executor == "local":
        return [(tid, c["job"], m, err) for tid, c, m, err in run_local(ctx, configs, data)]
    from ray import tune

    from tuneall.core.progress import ray_verbosity
    from tuneall.sweeping.progress import SweepLines, callback

    # The parallel-members option is a search's; a sweep job trains its members in its own process.
    results = run_tune(with_trial_resources(ctx, data, lambda config: res.bundles(1)), name=cfg.run_name,
                       storage_path=R.storage.ray_storage_path(out), concurrency=at_once,
                       max_failures=cfg.max_failures, verbose=ray_verbosity(verbose),
                       param_space={"job": tune.grid_search(jobs)},
                       callbacks=[callback(SweepLines.of(jobs))] if verbose > 0 else [])
    return [(tid, c.get("job", {}), m, err) for tid, c, m, err in outcomes(results)]


def _print_estimate(cfg: SweepConfig, jobs: list[dict], info, concurrency: int) -> None:
    """The training-time estimate of every job (seconds per step of its architecture x its member-steps)."""
    from tuneall.training.estimate import announce, per_step_seconds
    from tuneall.planning.points import plan_point

    def per_job():
        # The planned member, not the point: a design-class point's members are narrower or shallower than it.
        rows = pd.DataFrame([plan_point(j["point"], Budget(max(j["budgets"]), cfg.unit, cfg.min_steps), info).row()
                             for j in jobs])
        return per_step_seconds(rows, info, cfg.resources.threads) * [j["member_steps"] for j in jobs]

    announce(per_job, lambda t: t.sum() / concurrency, f"all {len(jobs)} trial(s), {concurrency} at a time")


def _collect(results: list[tuple]) -> tuple[pd.DataFrame, list[dict]]:
    """Cells table (one row per allocation, budget, rule, repeat) and one row per job, from (trial id, job, metrics,
    error) of every trial."""
    rows, jobs = [], []
    for tid, job, m, err in results:
        if err or "cells_json" not in m:
            for c in job.get("budgets", []):
                rows.append({**job.get("point", {}), "budget": c, "status": "failed", "error": err or "no result",
                             "job": tid})
            jobs.append({"job": tid, **job.get("point", {}), "status": "failed", "error": err})
            continue
        rows += [{**r, "job": tid} for r in json.loads(m["cells_json"])]
        jobs.append({"job": tid, **job["point"], "status": "ok", "budgets": len(job["budgets"]),
                     **{k: m.get(k) for k in ("member_steps", "member_steps_reused", "member_steps_replayed",
                                              "planned_member_steps", "trained_steps", "train_time_s", "threads")}})
    return pd.DataFrame(rows), jobs


__all__ = ["SweepConfig", "parse_budgets", "plan_sweep", "reuse_blocker", "run_job", "sweep_job", "run_sweep"]
