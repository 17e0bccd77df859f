"""The member store: cells answered from stored members equal fresh runs bit for bit; a grid with reuse trains each
member once; in-flight duplicates wait; damaged files are misses; divergence is answered only where exact."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from tuneall.store import records as S
from tuneall.core.budget import Budget
from tuneall.store.reuse import StoreTrainer, architecture_plans, horizons
from tuneall.training.trial import run_trial, train_sequential

POINT = {"family": "cnn3", "width": 0.25, "depth": 1, "k": 1, "data_fraction": 1.0, "batch_size": 32}
BUDGET = Budget(1e5, "param-steps", 10)  # T(1) = 537 steps of a 186-parameter member: seconds per trial


@pytest.fixture(scope="module")
def digits():
    from tuneall.data import load_dataset

    torch.set_num_threads(1)
    return load_dataset("digits")


def _plans(data, ks=(1, 2, 3, 4), repeats=2):
    return architecture_plans(POINT, ks, BUDGET, data.info, repeats=repeats)


def _same(a, b):
    assert a.summary == b.summary and a.repeats == b.repeats and a.curve == b.curve and a.status == b.status


def test_grid_with_the_store_equals_fresh_trials_and_trains_each_member_once(digits, tmp_path):
    plans = _plans(digits)
    assert sorted(plans) == [1, 2, 3, 4] and plans[1].steps > plans[4].steps
    store = S.MemberStore(tmp_path / S.STORE_DIR)
    fid = S.data_fingerprint(digits)
    trained = 0
    for k in (4, 2, 3, 1):  # any order: each member is trained to its horizon by whichever trial needs it first
        tr = StoreTrainer(store, fid, torch.get_num_threads(), horizons(k, plans, "grid"))
        reused = run_trial(plans[k], digits, trainer=tr)
        _same(reused, run_trial(plans[k], digits, trainer=train_sequential))
        trained += tr.counts["member_steps_trained"]
        if k != 4:
            assert tr.counts["members_trained"] == 0  # the k=4 trial already trained every member to its horizon
    # Member j is trained once, to T(j + 1): the grid's member-steps, each member once.
    assert trained == sum(plans[j + 1].steps for j in range(4)) * 2
    assert trained < sum(p.k * p.steps * 2 for p in plans.values())
    assert len(store) == 4 * 2


def test_own_mode_reuses_a_smaller_trials_members_and_trains_only_the_extra_ones(digits, tmp_path):
    plans = _plans(digits, repeats=1)
    store = S.MemberStore(tmp_path)
    fid = S.data_fingerprint(digits)
    first = StoreTrainer(store, fid, torch.get_num_threads(), horizons(2, plans, "own"))
    run_trial(plans[2], digits, trainer=first)
    assert first.counts["members_trained"] == 2
    later = StoreTrainer(store, fid, torch.get_num_threads(), horizons(4, plans, "own"))
    _same(run_trial(plans[4], digits, trainer=later), run_trial(plans[4], digits, trainer=train_sequential))
    assert later.counts["members_reused"] == 2 and later.counts["members_trained"] == 2
    assert later.counts["member_steps_reused"] == 2 * plans[4].steps
    # k=1 needs more steps than anything stored: member 0 is continued from its state at T(2), not started over.
    longer = StoreTrainer(store, fid, torch.get_num_threads(), horizons(1, plans, "own"))
    _same(run_trial(plans[1], digits, trainer=longer), run_trial(plans[1], digits, trainer=train_sequential))
    assert longer.counts["members_trained"] == 1
    assert longer.counts["member_steps_trained"] == plans[1].steps - plans[2].steps


@pytest.mark.parametrize("family,optimizer", [("cnn3", "sgd"), ("cnn3", "adamw"), ("resnet", "sgd")])
def test_a_continued_member_is_bit_identical_to_an_uninterrupted_one(digits, family, optimizer):
    """Weights, optimiser state (momentum / Adam moments), batch order, BatchNorm statistics and the final-loss tail
    all carry over: every evaluation after the stop and the final loss equal one uninterrupted run's."""
    from tuneall.core.config import TrainConfig
    from tuneall.data import with_fraction
    from tuneall.training.member import train_member

    data = with_fraction(digits, 0.5)  # val split present: both splits are compared
    cfg = TrainConfig(batch_size=32, optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 1e-3,
                      weight_decay=1e-4)
    fresh = train_member(family, 0.5, None, data, 90, 5, cfg, (30, 70))
    first = train_member(family, 0.5, None, data, 43, 5, cfg, (30,), keep_state=True)  # stops mid-epoch
    assert first.state["step"] == 43 and torch.equal(first.test_logprobs[30], fresh.test_logprobs[30])
    rest = train_member(family, 0.5, None, data, 90, 5, cfg, (30, 70), start=first.state)
    assert sorted(rest.test_logprobs) == [70, 90] and rest.steps_done == 90  # only evaluations after the stop
    for s in (70, 90):
        assert torch.equal(rest.test_logprobs[s], fresh.test_logprobs[s])
        assert torch.equal(rest.val_logprobs[s], fresh.val_logprobs[s])
    assert rest.final_loss == fresh.final_loss


def test_a_record_continues_only_where_every_needed_evaluation_was_made(digits, tmp_path):
    plans = _plans(digits, ks=(1, 2), repeats=1)
    store = S.MemberStore(tmp_path)
    fid = S.data_fingerprint(digits)
    t2 = plans[2].steps
    req = lambda steps, evals: S.Request(StoreTrainer(store, fid, 1).key(plans[2], 0), 0, steps, evals, steps, evals)  # noqa: E731
    from tuneall.training.member import MemberResult, train_member

    calls = []

    def train(seed, steps, evals, start=None):
        calls.append(None if start is None else start["step"])
        return train_member("cnn3", 0.25, 1, digits, steps, seed, plans[2].train, evals, start=start,
                            keep_state=True)

    S.fetch_or_train(store, [req(t2, ())], train, MemberResult)
    rec = store.load(S.key_id(req(t2, ()).key))
    assert rec.state["step"] == t2 and rec.continues_to(2 * t2) and not rec.continues_to(2 * t2, (t2 // 2,))
    S.fetch_or_train(store, [req(2 * t2, (t2 // 2,))], train, MemberResult)  # an evaluation the record lacks
    S.fetch_or_train(store, [req(3 * t2, (t2 // 2,))], train, MemberResult)  # now it has it
    # The missing evaluation is replayed (from step 0: this record kept no grid states), then the run continues
    # from the stored state; the third request continues at once.
    assert calls == [None, None, t2, 2 * t2]


def test_curve_steps_and_the_state_grid_do_not_depend_on_the_budget():
    from types import SimpleNamespace

    from tuneall.store.replay import grid_steps, plan
    from tuneall.training.trial import curve_steps

    assert curve_steps(1000) == (32, 64, 128, 256, 512, 1000) and curve_steps(1024) == (32, 64, 128, 256, 512, 1024)
    assert curve_steps(3000) == (128, 256, 512, 1024, 2048, 3000) and curve_steps(1) == (1,)
    assert grid_steps(1000) == (128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896)
    assert set(grid_steps(3000)) & set(range(1000)) <= set(grid_steps(1000))  # one grid for every budget
    rec = SimpleNamespace(diverged=False, state={"step": 1000}, ok_through=1000, test={1000: 0, 512: 0},
                          checkpoints={512: {}, 640: {}, 768: {}})
    # 300: no state below it, replayed from scratch; 700 and 750 from the state at 640 in one replay; 512 was made;
    # 1500 and 2000 come after the stored run: the continuation makes them.
    assert plan(rec, 2000, (300, 512, 700, 750, 1500)) == [(0, 300, (300,)), (640, 750, (700, 750))]
    assert plan(rec, 2000, (512, 1500)) == []
    assert plan(SimpleNamespace(**{**rec.__dict__, "diverged": True}), 2000, (300,)) == []
    assert plan(SimpleNamespace(**{**rec.__dict__, "state": None}), 2000, (300,)) == []  # nothing to continue
    no_state = SimpleNamespace(**{**rec.__dict__, "state": None})
    assert plan(no_state, 800, (700,)) == [(640, 700, (700,)), (768, 800, (800,))]  # inside the run: replays only


def _grid(store, budget, data, ks=(1, 2, 4)):
    """A grid search's trials on ``store`` (widest first): plans, {k: trial result}, the summed store counts."""
    from collections import Counter

    plans = architecture_plans(POINT, ks, budget, data.info, repeats=1)
    counts, out = Counter(), {}
    for k in sorted(plans, reverse=True):
        tr = StoreTrainer(store, S.data_fingerprint(data), torch.get_num_threads(), horizons(k, plans, "grid"),
                          grid_states=True)  # as on a shared store (--member-store DIR)
        out[k] = run_trial(plans[k], data, trainer=tr)
        counts.update(tr.counts)
    return plans, out, counts


def test_grid_states_are_kept_only_in_a_shared_store(digits, tmp_path):
    """A results directory's own store keeps no replay states (records stay small); a shared one does."""
    from tuneall.store.reuse import keyed_trainer

    own = keyed_trainer(tmp_path / "run", digits, None, 1)
    shared = keyed_trainer(tmp_path / "run", digits, None, 1, root=tmp_path / "shared")
    assert not own.grid_states and shared.grid_states
    plans = architecture_plans(POINT, (1,), BUDGET, digits.info, repeats=1)
    states = []
    for tr in (own, shared):
        run_trial(plans[1], digits, trainer=tr)
        (path,) = tr.store.record_files()
        states.append(torch.load(path, weights_only=True)["record"]["checkpoints"])
    assert states[0] == {} and len(states[1]) >= 3


def test_a_grid_at_3c_after_one_at_c_trains_only_what_the_first_did_not_plus_replays(digits, tmp_path):
    """Two searches sharing a store: every trial at 3C equals a fresh run bit for bit, and the 3C grid trains the
    3C grid alone minus everything the C grid trained, plus replays from grid states (member 0 is read at
    T(4, 3C) < T(1, C), a step no trial at C evaluated)."""
    c3 = Budget(3 * BUDGET.value, BUDGET.unit, BUDGET.min_steps)
    shared = S.MemberStore(tmp_path / "shared")
    first_plans, _, first = _grid(shared, BUDGET, digits)
    plans, got, later = _grid(shared, c3, digits)
    _, _, alone = _grid(S.MemberStore(tmp_path / "alone"), c3, digits)
    for k, res in got.items():
        _same(res, run_trial(plans[k], digits, trainer=train_sequential))
    replayed = later["member_steps_replayed"]
    assert later["member_steps_trained"] - replayed == alone["member_steps_trained"] - first["member_steps_trained"]
    assert plans[4].steps < first_plans[1].steps  # T(4, 3C) below the first run's horizon for member 0
    assert 0 < replayed <= plans[4].steps / 5  # from the grid state below T(4, 3C): at most a fifth of it
    assert first["member_steps_replayed"] == alone["member_steps_replayed"] == 0


def test_a_state_over_the_cap_is_not_kept(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(S, "STATE_MAX_BYTES", 0)
    plans = _plans(digits, ks=(1,), repeats=1)
    tr = StoreTrainer(S.MemberStore(tmp_path), S.data_fingerprint(digits), 1, horizons(1, plans, "own"))
    run_trial(plans[1], digits, trainer=tr)
    (path,) = tmp_path.glob("*.pt")
    assert S.MemberStore(tmp_path).load(path.stem).state is None


def test_the_key_separates_what_changes_numbers(digits):
    base = dict(family="cnn3", width=0.25, depth=1, train={"lr": 0.05}, data_fraction=1.0, seed=0,
                data_id=S.data_fingerprint(digits), threads=1)
    ids = {S.key_id(S.member_key(**base))}
    for change in ({"threads": 2}, {"seed": 1}, {"train": {"lr": 0.1}}, {"data_fraction": 0.5}, {"width": 0.5},
                   {"method": "vectorized"}, {"device": "cuda"}, {"data_id": "other"}, {"torch_version": "x"},
                   {"model_id": "other code"}):
        ids.add(S.key_id(S.member_key(**{**base, **change})))
    assert len(ids) == 11
    # heartbeat_s prints progress only: not part of the key
    assert S.key_id(S.member_key(**{**base, "train": {"lr": 0.05, "heartbeat_s": 60}})) == S.key_id(
        S.member_key(**base))


@pytest.mark.parametrize("steps,done,diverged,evals,expect", [
    (100, 100, False, {100}, 100),  # never diverged: the whole run
    (100, 36, True, {100}, 30),  # broke at the check of step 37? no: at 40 (multiples of 10) -> ok at 30
    (100, 24, True, {25, 100}, 20),  # broke at the eval check of 25: last passed check 20
    (100, 44, True, {42, 45, 100}, 42),  # an eval step is a check too
])
def test_ok_through_is_the_last_passed_divergence_check(steps, done, diverged, evals, expect):
    assert S.ok_through(steps, done, diverged, evals) == expect


def _fake(seed, steps, evals, start=None):
    from tuneall.training.member import MemberResult

    r = MemberResult(seed, steps, steps, False, 0.0, 1.0)
    r.test_logprobs = {s: torch.full((2, 2), float(seed * 1000 + s)) for s in S.needed_evals(steps, evals)}
    return r


def test_an_in_flight_duplicate_waits_and_free_members_train_first(tmp_path):
    from tuneall.training.member import MemberResult

    store = S.MemberStore(tmp_path)
    key_busy, key_free = {"m": 0}, {"m": 1}
    order = []

    def train(seed, steps, evals, start=None):
        order.append(seed)
        return _fake(seed, steps, evals)

    reqs = [S.Request(key_busy, 0, 10, (), 20, (10,)), S.Request(key_free, 1, 10, (), 10, ())]
    release = threading.Event()

    def holder():  # another trial training the busy member right now
        with store.lock(S.key_id(key_busy)):
            release.wait(5)
            store.save(S.record_of(key_busy, _fake(0, 20, (10,)), (10,)))

    t = threading.Thread(target=holder)
    t.start()
    time.sleep(0.2)
    threading.Timer(0.5, release.set).start()
    out, counts = S.fetch_or_train(store, reqs, train, MemberResult)
    t.join()
    assert order == [1]  # the free member trained; the busy one was answered by the holder's run after waiting
    assert counts["members_reused"] == 1 and counts["members_trained"] == 1
    assert float(out[0].test_logprobs[10][0, 0]) == 10.0 and out[0].steps == 10


def test_a_damaged_record_is_a_miss(tmp_path, capsys):
    from tuneall.training.member import MemberResult

    store = S.MemberStore(tmp_path)
    key = {"m": 3}
    store.root.mkdir(parents=True, exist_ok=True)
    store.path(S.key_id(key)).write_bytes(b"\x80\x04garbage")
    out, counts = S.fetch_or_train(store, [S.Request(key, 3, 10, (), 10, ())], _fake, MemberResult)
    # a miss, counted for the run's one warning line (tuneall.store.keys.warn_rejected), not printed per process
    assert counts["members_trained"] == 1 and counts["store_records_rejected"] == 1
    assert capsys.readouterr().err == ""
    assert store.load(S.key_id(key)).covers(10)


def test_merge_keeps_every_evaluation_of_both_prefix_runs():
    short = S.record_of({"m": 0}, _fake(0, 10, (5,)), (5,))
    long = S.record_of({"m": 0}, _fake(0, 30, (20,)), (20,))
    m = S.merge(short, long)
    assert sorted(m.test) == [5, 10, 20, 30] and m.steps == 30 and m.covers(10, (5,)) and not m.covers(40)
    assert S.merge(long, short).test.keys() == m.test.keys()


def test_a_trials_weights_are_its_members_at_its_own_steps_even_when_trained_past_them(digits, tmp_path):
    """A grid member trained past the trial's T (to a smaller k's need) keeps its weights at the trial's T on the
    way: the trial's result carries exactly the weights a fresh run of the trial gives, never a longer run's."""
    plans = _plans(digits, ks=(1, 2), repeats=1)
    tr = StoreTrainer(S.MemberStore(tmp_path), S.data_fingerprint(digits), torch.get_num_threads(),
                      horizons(2, plans, "grid"), snapshot_steps={p.steps for p in plans.values()})
    got = run_trial(plans[2], digits, trainer=tr).weights
    fresh = run_trial(plans[2], digits, trainer=train_sequential).weights
    # member 0 is trained to T(1) > T(2) for the k=1 trial; member 1 only to the trial's own T(2)
    assert tr.counts["members_trained"] == 2 and [s for s, _ in got] == [s for s, _ in fresh] == list(plans[2].seeds[0])
    for (_, a), (_, b) in zip(got, fresh):
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def test_the_chosen_trials_weights_come_from_the_store_bit_for_bit_without_training(digits, tmp_path):
    """Members trained past a trial's T (to a larger k's need) keep their weights at every trial's T: the chosen
    allocation's ensemble is saved from the store, equal to a fresh run's weights, and nothing is trained."""
    from tuneall.store.reuse import store_trainer
    from tuneall.tuning.weights import stored_weights as _stored_weights

    plans = _plans(digits, ks=(1, 2, 4), repeats=2)
    threads = torch.get_num_threads()
    # One grid trial (k=4) trains member 0 to T(1), member 1 to T(2), members 2-3 to T(4), keeping weights on the way.
    run_trial(plans[4], digits, trainer=store_trainer(tmp_path, POINT, plans[4], digits, threads, (1, 2, 4), "grid",
                                                      BUDGET, 2, 0))
    for k in (1, 2, 4):
        result = _stored_weights(tmp_path, plans[k], digits, digits, threads, "mean")
        fresh_result = run_trial(plans[k], digits, trainer=train_sequential)
        members, fresh = result.weights, fresh_result.weights
        _same(result, fresh_result)
        assert [s for s, _ in members] == [s for s, _ in fresh] and len(members) == 2 * k
        for (_, a), (_, b) in zip(members, fresh):
            assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    # Records without those weights (a store written before they were kept): the search trains again.
    bare = tmp_path / "bare"
    StoreTrainer(S.MemberStore(bare / S.STORE_DIR), S.data_fingerprint(digits), threads,
                 horizons(4, plans, "grid"))(plans[4], digits, None, ())
    assert _stored_weights(bare, plans[2], digits, digits, threads, "mean") is None
