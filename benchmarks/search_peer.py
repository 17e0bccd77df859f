"""tuneall against a careful hand-written peer, same points, measured in one run (issue 13's wall-time goal).

The case: mnist1d, C = 1e7 param-steps, the packaged ``paper`` space, 3 seeds per allocation, 12 TPE trials, two
trials at a time with one thread each (tuneall's defaults on 2 cores). First the real ``tuneall search`` runs
(a local Ray started and stopped by tuneall, OptunaSearch, the trial factory, the member store, the journal and the
report); its wall time counts everything from the call to the written report. Then the peer: plain Optuna in two
worker processes sharing one journal-file study, with the 12 points tuneall trained enqueued, each trial planned by
the same trial factory and trained from scratch by the same training code (one thread per process). The peer's wall
time counts the processes' start, imports and data loading too. So the ratio measures what tuneall's orchestration
and member reuse cost or save, not the training loop, and the accuracies of the two must agree exactly.

    python benchmarks/search_peer.py [--budget 1e7] [--trials 12]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import tempfile
import time
from pathlib import Path

import _common as C

GOAL = 0.9
DATASET, SPACE, SEEDS = "mnist1d", "paper", 3


def _peer_worker(storage: str, points: list[dict], budget: float, total: int) -> None:
    """One peer process: pops enqueued trials until every point is taken, trains each from scratch."""
    import optuna
    import torch

    from tuneall.core.budget import Budget
    from tuneall.data import load_dataset, with_fraction
    from tuneall.planning.points import plan_point
    from tuneall.training.trial import run_trial

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_dataset(DATASET)
    study = optuna.load_study(study_name="peer", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(storage)))

    def objective(trial):
        point = points[trial.suggest_int("i", 0, len(points) - 1)]
        plan = plan_point(point, Budget(budget), data.info, repeats=SEEDS, base_seed=0)
        res = run_trial(plan, with_fraction(data, plan.allocation.data_fraction))
        trial.set_user_attr("val_ensemble_acc_mean", res.metrics()["val_ensemble_acc_mean"])
        return res.metrics()["val_ensemble_acc_mean"]

    stop = optuna.study.MaxTrialsCallback(total, states=(optuna.trial.TrialState.COMPLETE,
                                                         optuna.trial.TrialState.RUNNING))
    study.optimize(objective, callbacks=[stop])


def run_peer(points: list[dict], budget: float, root: Path) -> tuple[float, dict]:
    """Wall time of the plain-Optuna peer over ``points`` and its objective per point index."""
    import optuna

    storage = str(root / "peer.journal")
    t0 = time.perf_counter()
    study = optuna.create_study(study_name="peer", direction="maximize", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(storage)))
    for i in range(len(points)):
        study.enqueue_trial({"i": i})
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_peer_worker, args=(storage, points, budget, len(points))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    done = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    return wall, {int(t.params["i"]): t.value for t in done}


def run_tuneall(budget: float, trials: int, root: Path) -> tuple[float, list[dict], dict, dict]:
    """Wall time of ``tuneall.search``, its trials' points in journal order, objective per point and step counts."""
    import tuneall
    from tuneall.rundir import journal

    t0 = time.perf_counter()
    tuneall.search(budget=budget, dataset=DATASET, space=SPACE, trials=trials, seeds=SEEDS, name="tuneall",
                   storage_path=str(root), verbose=0, confirm=False, save_members="none")
    wall = time.perf_counter() - t0
    recs = [r for r in journal.read(root / "tuneall") if r["metrics"].get("status") == "ok"]
    points = [r["config"].get("point", r["config"]) for r in recs]
    values = {i: r["metrics"]["val_ensemble_acc_mean"] for i, r in enumerate(recs)}
    steps = {"member_steps_trained": sum(int(r["metrics"].get("member_steps_trained", 0)) for r in recs),
             "member_steps_reused": sum(int(r["metrics"].get("member_steps_reused", 0)) for r in recs)}
    return wall, points, values, steps


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=1e7)
    p.add_argument("--trials", type=int, default=12)
    args = p.parse_args()
    head = C.header("search_peer", False)
    root = Path(tempfile.mkdtemp(prefix="search_peer_"))
    try:
        t_wall, points, t_values, steps = run_tuneall(args.budget, args.trials, root)
        print(f"tuneall: {t_wall:.1f} s, {len(points)} trials, {steps}", flush=True)
        p_wall, p_values = run_peer(points, args.budget, root)
        print(f"peer (plain Optuna, 2 processes, same points): {p_wall:.1f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    same = sum(1 for i, v in t_values.items() if p_values.get(i) == v)
    ratio = t_wall / p_wall
    rows = [C.row(f"tuneall search wall time ({DATASET}, C={args.budget:g}, {SPACE}, {len(points)} TPE trials, "
                  f"{SEEDS} seeds)", t_wall, "plain Optuna, 2 processes, same points", p_wall, "s",
                  f"<= {GOAL} x peer", bool(ratio <= GOAL),
                  f"objective identical on {same} of {len(points)} points; tuneall trained "
                  f"{steps['member_steps_trained']:,} member-steps and answered {steps['member_steps_reused']:,} "
                  f"from its member store")]
    C.print_rows(rows)
    C.write_result("search_peer", {**head, "rows": rows, "points": points, "tuneall_values": t_values,
                                   "peer_values": p_values, **steps,
                                   "command": f"python benchmarks/search_peer.py --budget {args.budget:g} "
                                              f"--trials {args.trials}"})


if __name__ == "__main__":
    main()
