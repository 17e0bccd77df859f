"""Successive halving: predictions at the full budget from each allocation's own anytime curve, promotion of every
candidate possibly tied with the leader, and a resume that keeps finished rungs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tuneall.tuning import halving as H

from test_store_trust import user  # noqa: F401  (a fixture: a user model file and data loader)


def _curve(E, A, alpha, steps, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return [float(1 - (E + A * s ** -alpha) + rng.normal(0, noise)) for s in steps]


def test_prediction_from_a_ninth_of_the_steps_lands_near_the_truth():
    steps = [30, 60, 120, 250, 500, 1000]
    curves = [_curve(0.05, 3.0, 0.5, steps, 0.002, s) for s in range(3)]
    mean, se = H.predict_full(steps, curves, 9000)
    truth = 1 - (0.05 + 3.0 * 9000 ** -0.5)
    assert abs(mean - truth) < 0.02 and se > 0
    assert mean > np.mean([c[-1] for c in curves])  # it extrapolates upwards, beyond the last observation


def test_a_slow_starter_that_overtakes_at_the_full_budget_is_promoted():
    # A (big model): worse at a ninth of its steps, better at the full budget; B (small): ahead early, saturates.
    sa, sb = [10, 20, 40, 80, 160, 333], [40, 80, 160, 320, 640, 1333]
    a = [_curve(0.02, 8.0, 0.6, sa, 0.001, s) for s in range(3)]
    b = [_curve(0.10, 0.5, 0.6, sb, 0.001, s) for s in range(3)]
    assert np.mean([c[-1] for c in a]) < np.mean([c[-1] for c in b])  # at equal fraction A looks worse
    preds = {"A": H.predict_full(sa, a, 3000), "B": H.predict_full(sb, b, 12000)}
    assert H.promote(preds, eta=2)[0] == "A"


@pytest.mark.parametrize("preds,eta,expect", [
    ({"a": (0.9, 0.01), "b": (0.89, 0.01), "c": (0.5, 0.01)}, 3, ["a", "b"]),  # b possibly tied, c not
    ({"a": (0.9, 0.0), "b": (0.8, 0.0), "c": (0.7, 0.0)}, 2, ["a", "b"]),  # at least ceil(n / eta)
    ({"a": (0.9, 0.05), "b": (0.85, 0.05), "c": (0.84, 0.05), "d": (0.5, 0.01)}, 2, ["a", "b", "c"]),
    ({}, 3, []),
])
def test_promote_keeps_whatever_could_still_tie_the_leader(preds, eta, expect):
    assert H.promote(preds, eta=eta) == expect


def test_on_a_plateau_promotion_stops_at_the_cap_and_the_rest_are_marked_tied():
    preds = {c: (0.99 - 0.001 * n, 0.01) for n, c in enumerate("abcdefghi")}  # nine candidates, all tied
    assert H.possibly_tied(preds) == list("abcdefghi")
    assert H.promote(preds, eta=3, cap=2) == list("abcdef")  # ceil(9 / 3) = 3, at most 2 x 3
    assert H.promote(preds, eta=3, cap=1.5) == list("abcde")  # at most ceil(1.5 x 3)
    assert H.promote(preds, eta=3, cap=1) == list("abc")


def test_select_runs_each_rung_trial_once_and_a_resume_runs_none_again(tmp_path):
    points = [{"width": w, "k": 1} for w in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)]
    calls = []

    def run_rung(f, pts):
        calls.append((f, len(pts)))
        steps = [10, 20, 40, 80]
        return [{"status": "ok", "steps": [round(s * f * 9) for s in steps], "full_steps": 720,
                 "curve": [_curve(0.3 / p["width"], 1.0, 0.5, steps, 0.001, s) for s in range(2)]} for p in pts]

    alive, rows = H.select(points, run_rung, tmp_path, log=lambda *_: None)
    assert calls[0] == (H.RUNGS[0], 6) and 1 <= len(alive) < 6 and alive[0]["width"] == 8.0
    assert len(H.read_log(tmp_path)) == sum(n for _, n in calls)
    calls.clear()
    again, _ = H.select(points, run_rung, tmp_path, log=lambda *_: None)
    assert calls == [] and again == alive


def test_a_large_k_allocation_still_at_chance_is_judged_by_its_first_members_longer_curve():
    """At a rung a k = 8 allocation has run a few steps per member (its own curve near chance), but member 0 of its
    architecture has run nearly to the allocation's full T: the single-member accuracy there is the floor."""
    own_steps = [5, 8, 12, 17]
    own = [[0.11, 0.12, 0.12, 0.13], [0.10, 0.11, 0.13, 0.12], [0.12, 0.11, 0.12, 0.14]]
    m_steps = [34, 60, 100, 136]
    member = [[0.6, 0.8, 0.88, 0.90], [0.62, 0.79, 0.87, 0.91], [0.58, 0.81, 0.89, 0.90]]
    m = {"steps": own_steps, "curve": own, "full_steps": 153, "member_steps_curve": m_steps, "member_curve": member}
    mean, se = H.predict_with_floor(m)
    assert mean >= 0.90 and se < 0.05  # not the ~0.13 its own curve predicts
    assert H.predict_full(own_steps, own, 153)[0] < 0.3
    # Evaluated past the target: read off at the latest evaluation not after it (no extrapolation).
    assert H.member_floor(m_steps, member, 100) == pytest.approx((0.88, np.std([0.88, 0.87, 0.89], ddof=1) / 3 ** .5))
    # No member curve (an old rung log): the own prediction.
    assert H.predict_with_floor({**m, "member_curve": []}) == H.predict_full(own_steps, own, 153)


def _rung_ctx(user, results_dir, seeds=2):
    from test_store_trust import BUDGET

    from tuneall.core.config import Resources
    from tuneall.runner import TrialContext
    from tuneall.store.keys import run_ids
    from tuneall.tuning.rungs import rung_job, rung_points

    return TrialContext(job=rung_job, resources=Resources(), seeds=seeds, seed=0, budget=BUDGET, unit=BUDGET.unit,
                        min_steps=BUDGET.min_steps, results_dir=str(results_dir),
                        reuse={"mode": "grid", "ks": {}, "ids": run_ids(user["data"], [user["family"]])})


def test_one_rung_trial_per_architecture_trains_each_member_once_and_full_trials_stay_exact(user, tmp_path):
    """Two rungs of one architecture (k = 1, 2, 4, then 1 and 4 promoted), each one job for every alive k, then the
    promoted points' full trials through the store: every member trained once (continued from rung to rung), every
    k's metrics in halving's format with its steps and evaluations on the shared grid, and each full trial bit for
    bit a fresh run."""
    from test_store_trust import BUDGET

    from tuneall.store.replay import grid_in
    from tuneall.store.reuse import architecture_plans, horizons, keyed_trainer
    from tuneall.training.trial import run_trial, train_sequential
    from tuneall.tuning.rungs import rung_job, rung_points

    point = {"family": user["family"], "width": 1.0, "depth": 1, "k": 1, "data_fraction": 1.0, "batch_size": 16,
             "optimizer": "sgd", "lr": 0.05}
    ctx = _rung_ctx(user, tmp_path)
    full = architecture_plans(point, (1, 2, 4), BUDGET, user["data"].info, repeats=2)
    trained = 0
    for i, ks in enumerate([(1, 2, 4), (1, 4)]):
        got = rung_job({"trial": {"points": [{**point, "k": k} for k in ks]}, "fraction": H.RUNGS[i]}, ctx,
                       user["data"])
        assert [e["point"]["k"] for e in rung_points(got)] == sorted(ks, reverse=True)
        for e in rung_points(got):
            m = e["metrics"]
            assert m["status"] == "ok" and m["full_steps"] == full[e["point"]["k"]].steps
            assert m["rung_steps"] == H.rung_steps(m["full_steps"], H.RUNGS[i], BUDGET.min_steps)
            assert m["rung_steps"] in grid_in(1, m["rung_steps"]) and set(m["steps"]) <= set(grid_in(1, 1e9))
            assert len(m["curve"]) == 2 and all(len(c) == len(m["steps"]) for c in m["curve"])
            assert len(m["member_curve"]) == 2 and len(m["member_steps_curve"]) >= 3
            assert H.predict_with_floor(m)[0] > 0
        counts = [e["metrics"] for e in rung_points(got)]
        assert sum(c["members_trained"] for c in counts) == 2 * 4  # members 0..3 of both seeds, once: the widest k's
        assert all(c["members_trained"] == 0 for c in counts[1:])
        trained += sum(c["member_steps_trained"] for c in counts)
    # Member j's horizon at a rung: the longest rung steps of any alive k > j; rung 2 continued each from rung 1.
    rs = [{k: H.rung_steps(full[k].steps, f, BUDGET.min_steps) for k in ks} for f, ks in zip(H.RUNGS, [(1, 2, 4),
                                                                                                    (1, 4)])]
    assert trained == 2 * sum(max(max(r[k] for k in r if k > j) for r in rs) for j in range(4))
    plans, members = {k: full[k] for k in (1, 4)}, 0
    for k in (1, 4):
        tr = keyed_trainer(tmp_path, user["data"], ctx.reuse["ids"], 1, horizons(k, plans, "grid"))
        got, fresh = run_trial(plans[k], user["data"], trainer=tr), run_trial(plans[k], user["data"],
                                                                              trainer=train_sequential)
        assert got.summary == fresh.summary and got.repeats == fresh.repeats and got.curve == fresh.curve
        trained += tr.counts["member_steps_trained"]
        members += tr.counts["members_trained"]
        assert tr.counts["member_steps_replayed"] == 0
    assert members == 2 * 4  # each continued once more, from where the rungs left it
    # The rung's trial split in two (every other k, as rung_trials splits one to fill idle CPUs): the same
    # horizons, so the same numbers for every k.
    first = rung_job({"trial": {"points": [{**point, "k": k} for k in (1, 2, 4)]}, "fraction": H.RUNGS[0]},
                     _rung_ctx(user, tmp_path / "whole"), user["data"])
    halves = [rung_job({"trial": {"points": [{**point, "k": k} for k in ks], "arch_ks": [1, 2, 4]},
                        "fraction": H.RUNGS[0]}, _rung_ctx(user, tmp_path / "split"), user["data"])
              for ks in ((4, 1), (2,))]
    split = {e["point"]["k"]: e["metrics"] for h in halves for e in rung_points(h)}
    for e in rung_points(first):
        m = split[e["point"]["k"]]
        assert {c: m[c] for c in ("steps", "rung_steps", "curve", "member_steps_curve", "member_curve")} == {
            c: e["metrics"][c] for c in ("steps", "rung_steps", "curve", "member_steps_curve", "member_curve")}
    assert trained == 2 * 4 * full[4].steps + 2 * (full[1].steps - full[4].steps)  # each member trained once


def test_one_searcher_runs_the_rungs_then_the_full_trials_logging_each_rung_trial_as_it_ends(tmp_path):
    """Halving as one Ray Tune run (tuneall.tuning._searchers.Halving): a rung's trials are suggested together, the
    next rung's only once all have finished (None meanwhile), each finished trial's points logged as it ends (a
    trial stopped before it reported: nothing logged, its points failed), then the promoted points as full trials,
    then FINISHED."""
    from ray.tune.search import Searcher

    from tuneall.tuning._searchers import Halving, Points
    from tuneall.tuning.rungs import rung_points

    points = [{"width": w, "depth": 1, "k": k} for w in (1.0, 2.0, 4.0) for k in (1, 2)]

    def metrics(p, seed_noise=0.0):
        steps = [10, 20, 40, 80]
        return {"status": "ok", "steps": steps, "full_steps": 720,
                "curve": [_curve(0.3 / p["width"], 1.0, 0.5, steps, 0.001, s) for s in range(2)]}

    def configs(fraction, pts):  # one trial per architecture, as rung_trials groups them
        by: dict = {}
        for q in pts:
            by.setdefault(q["width"], []).append(q)
        return [{"trial": {"points": g}, "fraction": fraction} for g in by.values()]

    def result(config, ok=True):
        pts = config["trial"]["points"]
        return {"status": "ok", "points_json": json.dumps([{"point": q, "metrics": metrics(q)} for q in pts])}

    promoted = []
    search = Halving(H.selection(points, tmp_path, log=lambda *_: None),
                     configs, lambda rung, f, entries: [H.append_log(tmp_path, {"rung": rung, "fraction": f, **e})
                                                        for e in entries],
                     lambda alive, rows: promoted.append(alive) or Points(alive))
    first = [search.suggest(f"t{i}") for i in range(3)]
    assert [c["fraction"] for c in first] == [H.RUNGS[0]] * 3 and search.suggest("t3") is None
    search.on_trial_complete("t0", result(first[0]))
    assert len(H.read_log(tmp_path)) == 2 and search.suggest("t3") is None  # logged at once; the rung still runs
    search.on_trial_complete("t1", result(first[1]))
    search.on_trial_complete("t2", None)  # stopped before it reported: its points fail, nothing is logged
    assert len(H.read_log(tmp_path)) == 4 + 2  # select logs the failed ones (status "failed") itself
    assert {r["metrics"]["status"] for r in H.read_log(tmp_path)[4:]} == {"failed"}
    second, n = [], 3
    while (c := search.suggest(f"t{n}")) is not None and "fraction" in c:
        second.append((f"t{n}", c))
        n += 1
    assert second and all(c["fraction"] == H.RUNGS[1] for _, c in second) and c is None
    assert all(q["width"] != 4.0 for _, c in second for q in c["trial"]["points"])  # the failed one is out
    for tid, c in second:
        search.on_trial_complete(tid, result(c))
    full = []
    while isinstance(c := search.suggest(f"t{n}"), dict):
        full.append(c)
        n += 1
    assert c == Searcher.FINISHED and [c["point"] for c in full] == promoted[0] and promoted[0]
    assert len(rung_points(result(first[0]))) == 2
    # Ray Tune pickles its searcher into the experiment for Tuner.restore: the generator and closures stay out, and
    # a restored copy suggests nothing (a resume is tuneall's, from halving.jsonl and the journal).
    import pickle

    from ray import cloudpickle

    restored = pickle.loads(cloudpickle.dumps(search))
    assert restored.suggest("again") == Searcher.FINISHED and not restored.stopped


def test_a_rung_is_one_trial_per_architecture_split_only_to_fill_idle_slots():
    from tuneall.tuning.search_cost import rung_trials

    points = [{"width": w, "depth": 1, "k": k} for w in (1.0, 2.0) for k in (1, 2, 3, 4, 6, 8)]
    one = rung_trials(points, None, None, slots=2)
    assert len(one) == 2 and all(len(t["points"]) == 6 and t["arch_ks"] == [1, 2, 3, 4, 6, 8] for t in one)
    assert [p["k"] for p in one[0]["points"]] == [8, 6, 4, 3, 2, 1]  # widest first: it trains every member
    late = rung_trials(points[6:9], None, None, slots=4)  # one architecture left with three k, four slots
    assert [[p["k"] for p in t["points"]] for t in late] == [[3], [1], [2]]
    assert all(t["arch_ks"] == [1, 2, 3] for t in late)  # planned alike: the same horizons in every share
    assert rung_trials(points[6:9], None, None, slots=1) == [{"points": points[6:9][::-1], "arch_ks": [1, 2, 3]}]


def test_an_architecture_costing_more_than_a_slots_share_is_split_into_as_many_shares(monkeypatch):
    from tuneall.tuning import search_cost

    big = [{"width": 1.0, "k": k} for k in (4, 3, 2, 1)]
    small = [{"width": 2.0, "k": 1}]
    monkeypatch.setattr(search_cost, "_costed", lambda *a: [(big, 2.0), (small, 1.0)])
    trials = search_cost.rung_trials(big + small, None, None, slots=2)
    assert [[p["k"] for p in t["points"]] for t in trials] == [[4, 2], [3, 1], [1]]  # 2/3 of the work: 2 shares
    assert [t["arch_ks"] for t in trials] == [[1, 2, 3, 4], [1, 2, 3, 4], [1]]
    monkeypatch.setattr(search_cost, "_costed", lambda *a: [(big, 1.0), (small, 1.0)])
    assert len(search_cost.rung_trials(big + small, None, None, slots=2)) == 2  # balanced: one trial each


def test_a_resume_mid_rung_runs_only_the_architectures_not_logged(tmp_path):
    """A stop mid-rung left one architecture's trial logged: the resume asks for the other architecture only, and
    it is one trial (search_cost.architectures groups a rung's points)."""
    from tuneall.tuning.search_cost import architectures

    points = [{"width": w, "depth": 1, "k": k} for w in (1.0, 2.0) for k in (1, 2, 4)]

    def metrics(p):
        steps = [10, 20, 40, 80]
        return {"status": "ok", "steps": steps, "full_steps": 720,
                "curve": [_curve(0.3 / p["width"], 1.0, 0.5, steps, 0.001, s) for s in range(2)]}

    for p in points[:3]:  # the width-1 trial finished and was logged before the stop
        H.append_log(tmp_path, {"rung": 0, "fraction": H.RUNGS[0], "point": p, "metrics": metrics(p)})
    asked = []

    def run_rung(f, pts):
        asked.append((f, architectures(pts, None, None)))
        return [metrics(p) for p in pts]

    H.select(points, run_rung, tmp_path, log=lambda *_: None)
    assert asked[0] == (H.RUNGS[0], [[p for p in points[3:][::-1]]])  # one trial: width 2, widest k first
    assert len(H.read_log(tmp_path)) == len(points) + sum(len(p) for _, g in asked[1:] for p in g)


# --- --searcher auto ---------------------------------------------------------------------------------------------

def test_auto_chooses_what_the_held_out_benchmark_supports_and_says_why():
    """TPE for a grid (the held-out cases: TPE at halving's compute in the tie set one run in fifteen less often, in
    about two thirds of its wall time) and for continuous axes; the directory records the searcher chosen."""
    from tuneall.core.budget import Budget
    from tuneall.core.errors import ConfigError
    from tuneall.planning.space import load_space
    from tuneall.tuning.config import SearchConfig

    def cfg(space, **kw):
        return SearchConfig(budget=Budget(3e6), space=load_space(space), dataset="digits", searcher="auto", **kw)

    grid = cfg("paper")
    assert grid.searcher == "tpe" and "every axis of 'paper' is a list" in grid.auto_reason
    assert "held-out" in grid.auto_reason
    assert grid.default_name().endswith("-tpe") and grid.to_json()["searcher"] == "tpe"  # what auto chose
    tuned = cfg("tuned")
    assert tuned.searcher == "tpe" and "lr is a range in 'tuned'" in tuned.auto_reason
    wide = cfg("wide")
    assert "k, width are ranges in 'wide'" in wide.auto_reason
    with pytest.raises(ConfigError, match="valid: .*halving, auto"):
        SearchConfig(budget=Budget(3e6), space=load_space("paper"), dataset="digits", searcher="hyperband")


def test_auto_says_what_it_chose_before_the_plan(capsys):
    from test_cli import run_main

    rc, out, err = run_main(capsys, ["search", "--dataset", "digits", "--budget", "3e6", "--searcher", "auto",
                                     "--dry-run", "--seeds", "1", "--storage-path", "/nonexistent-dry"])
    assert rc == 0, err
    first = out.splitlines()[0]
    assert first.startswith("tuneall: --searcher auto chose tpe: every axis of 'paper' is a list"), out


@pytest.mark.slow
def test_trial_processes_idle_at_a_rung_barrier_are_kept_for_the_next_rung(tmp_path):
    """A searcher with nothing to suggest while a rung finishes (halving's barrier): Ray Tune alone stops all but one
    idle trial process there, and the next rung's two trials then ran one after the other in the one left (seen:
    pids [a, b, a, a]); run_tune keeps them (runner/trials.py), so the second rung runs side by side in the first's
    two processes."""
    from ray.tune.search import Searcher

    from tuneall.runner.cluster import ray_session
    from tuneall.runner.context import RunOptions
    from tuneall.runner.trials import run_tune

    def job(config):  # local: pickled by value (a worker cannot import the tests)
        import os
        import time

        from ray import tune

        start = time.time()
        time.sleep(config["sleep"])
        tune.report({"pid": os.getpid(), "start": start, "end": time.time(), "rung": config["rung"], "score": 0.0})

    class TwoRungs(Searcher):
        def __init__(self):
            super().__init__(metric="score", mode="max")
            self.rungs = [[{"sleep": 3.0, "rung": 0}, {"sleep": 6.0, "rung": 0}],
                          [{"sleep": 3.0, "rung": 1}, {"sleep": 3.0, "rung": 1}]]
            self.running = 0

        def suggest(self, trial_id):
            if not self.rungs[0]:
                if self.running:
                    return None  # the barrier: the first rung's slow trial still runs
                self.rungs.pop(0)
                if not self.rungs:
                    return Searcher.FINISHED
            self.running += 1
            return self.rungs[0].pop(0)

        def on_trial_complete(self, trial_id, result=None, error=False):
            self.running -= 1

    with ray_session(RunOptions(num_cpus=2)):
        grid = run_tune(job, name="pids", storage_path=str(tmp_path), concurrency=2, search_alg=TwoRungs(),
                        num_samples=-1, metric="score", mode="max")
    rungs = [[r.metrics for r in grid if r.metrics["rung"] == i] for i in (0, 1)]
    first, second = ({m["pid"] for m in rung} for rung in rungs)
    assert len(first) == 2 and second == first, rungs  # rung 2 in rung 1's processes, none started afresh
    a, b = rungs[1]
    assert a["start"] < b["end"] and b["start"] < a["end"], rungs  # and side by side, not one after the other
