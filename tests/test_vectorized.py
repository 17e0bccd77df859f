"""Vectorised members (tuneall.training.vectorized) train exactly the models that train_member trains one after another."""

from __future__ import annotations

import math

import pytest
import torch

from tuneall.core.budget import Budget
from tuneall.data import load_dataset, make_synthetic
from tuneall.planning.factory import Allocation, make_trial_plan
from tuneall.models import create_model, param_count
from tuneall.training.member import TrainConfig, channels_last_ok, train_member
from tuneall.training.trainers import make_trainer, select_trainer, train_sequential
from tuneall.training.trial import run_trial
from tuneall.training.vectorized import choose_method, train_members_vectorized, train_vectorized

FAST = TrainConfig(lr=0.05, batch_size=32)
ATOL = 1e-5  # float rounding: grouped vs ordinary convolutions sum in different orders
RTOL = 1e-5  # the same rounding in log-probabilities of magnitude > 1 (a confident member's unlikely classes)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Exactness does not depend on the thread count; one thread keeps these tests fast on a shared, loaded machine
    # (two OpenMP threads that lose a core to another process wait at every barrier).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small():
    return make_synthetic((3, 8, 8), num_classes=4, n_train=256, n_test=64, seed=0, signal=1.0)


def _plan(small, k, steps, repeats=1, width=0.25, depth=2):
    """A plan whose members train exactly ``steps`` steps."""
    p = param_count("cnn3", width, depth, 3, 4, 2)
    return make_trial_plan(Allocation("cnn3", width, depth, k=k), Budget(k * p * steps, min_steps=1), small.info,
                           FAST, repeats=repeats)


def _assert_same(seq, vec, atol=ATOL):
    assert len(seq) == len(vec)
    for a, b in zip(seq, vec):
        assert (a.seed, a.steps, a.steps_done, a.diverged) == (b.seed, b.steps, b.steps_done, b.diverged)
        assert sorted(a.test_logprobs) == sorted(b.test_logprobs)
        for s in a.test_logprobs:
            # log-probabilities: float rounding of the logits shows relative to their magnitude, hence rtol
            torch.testing.assert_close(b.test_logprobs[s], a.test_logprobs[s], atol=atol, rtol=RTOL)
            assert b.test_logprobs[s].dtype == torch.float32 and b.test_logprobs[s].device.type == "cpu"
        if a.diverged:
            assert math.isnan(b.final_loss)
        else:
            assert b.final_loss == pytest.approx(a.final_loss, abs=1e-4)
            assert b.train_time_s > 0 and math.isfinite(b.latency_s_per_image)


@pytest.mark.parametrize("family,width,depth,steps", [("cnn3", 0.25, 2, 30), ("resnet", 0.25, 8, 10)])
def test_vectorized_equals_sequential(small, family, width, depth, steps):
    seeds = (5, 6, 7)
    seq = [train_member(family, width, depth, small, steps, s, FAST, eval_steps=(4, 10)) for s in seeds]
    vec = train_members_vectorized(family, width, depth, small, steps, seeds, FAST, eval_steps=(4, 10))
    _assert_same(seq, vec)
    assert not torch.equal(vec[0].test_logprobs[steps], vec[1].test_logprobs[steps])  # members really differ


def test_vectorized_nchw_is_exact_to_rounding(small):
    # Without channels_last both paths run the same NCHW kernels except the grouping: agreement is tighter still.
    cfg = TrainConfig(lr=0.05, batch_size=32, channels_last=False)
    seq = [train_member("cnn3", 0.25, 2, small, 20, s, cfg) for s in (1, 2)]
    _assert_same(seq, train_members_vectorized("cnn3", 0.25, 2, small, 20, (1, 2), cfg), atol=2e-6)


def test_all_members_diverge_like_sequential(small):
    huge = TrainConfig(lr=1e20, batch_size=32)
    seq = [train_member("cnn3", 0.25, 1, small, 40, s, huge) for s in (0, 1)]
    vec = train_members_vectorized("cnn3", 0.25, 1, small, 40, (0, 1), huge)
    _assert_same(seq, vec)
    assert all(r.diverged and r.steps_done < 40 and not r.test_logprobs for r in vec)


def test_one_diverged_member_leaves_the_others_untouched(small, monkeypatch):
    """A member whose head is poisoned (bias = inf) diverges at its first check; the others train as usual."""
    import tuneall.training.member
    import tuneall.training.vectorized

    real = tuneall.training.member.create_model

    def poisoned(*args, **kw):
        m = real(*args, **kw)
        if torch.initial_seed() == 6:  # train_member and the vectorised path both seed before building
            with torch.no_grad():
                m.head.bias.fill_(float("inf"))
        return m

    monkeypatch.setattr(tuneall.training.member, "create_model", poisoned)
    monkeypatch.setattr(tuneall.training.vectorized, "create_model", poisoned)
    seeds = (5, 6, 7)
    seq = [train_member("cnn3", 0.25, 2, small, 25, s, FAST, eval_steps=(5,)) for s in seeds]
    vec = train_members_vectorized("cnn3", 0.25, 2, small, 25, seeds, FAST, eval_steps=(5,))
    assert [r.diverged for r in seq] == [False, True, False]
    _assert_same(seq, vec)


def test_run_trial_vectorized_matches_sequential(small):
    plan = _plan(small, k=3, steps=20, repeats=2)
    assert plan.steps == 20
    calls = []
    a = run_trial(plan, small, trainer=train_sequential)
    b = run_trial(plan, small, members="vectorized", progress=lambda r, i, m: calls.append((r, i, m.seed)))
    assert calls == [(r, i, plan.seeds[r][i]) for r in range(2) for i in range(3)]
    assert a.status == b.status == "ok"
    for key, v in a.summary.items():
        assert b.summary[key] == pytest.approx(v, abs=1e-4), key
    assert [s for s, _ in a.curve] == [s for s, _ in b.curve]
    assert b.train_time_s > 0 and b.costs["time_per_step_s"] > 0


def test_auto_measures_and_picks_a_method(small, monkeypatch):
    import tuneall.training.vectorized

    monkeypatch.setattr(tuneall.training.vectorized, "MIN_STEPS_TO_PROBE", 10)
    log = []
    plan = _plan(small, k=2, steps=10)
    trainer = make_trainer("auto", log=log)
    res = trainer(plan, small, None, ())
    assert len(res) == 1 and len(res[0]) == 2
    choice = log[0]
    assert choice["method"] in ("sequential", "vectorized")
    assert choice["t_seq_s"] > 0 and choice["t_vec_s"] > 0
    assert choice["method"] == ("vectorized" if choice["t_vec_s"] < choice["t_seq_s"] else "sequential")
    # Cached per process: a second trial of the same shape does not probe again.
    again = choose_method("cnn3", 0.25, 2, small, 2, FAST)
    assert again["t_seq_s"] == choice["t_seq_s"]
    # k = 1 and short trials never probe.
    make_trainer("auto", log=log)(_plan(small, k=1, steps=10), small, None, ())
    assert log[-1]["method"] == "sequential"
    monkeypatch.setattr(tuneall.training.vectorized, "MIN_STEPS_TO_PROBE", 300)
    make_trainer("auto", log=log)(_plan(small, k=3, steps=10), small, None, ())
    assert log[-1]["method"] == "sequential" and "reason" in log[-1]


def test_mixed_precision_option_runs(small):
    plan = _plan(small, k=2, steps=15)
    out = train_vectorized(plan, small, amp=True)  # bfloat16 autocast on CPU, float16 + GradScaler on a GPU
    for r in out[0]:
        assert not r.diverged and torch.isfinite(r.test_logprobs[plan.steps]).all()


def test_channels_last_is_kept_off_where_onednn_miscomputes():
    # Strided 1x1 convs with few input channels: resnet / wrn projection shortcuts at small widths.
    assert channels_last_ok(create_model("cnn3", 0.25, None, 3, 10))
    assert not channels_last_ok(create_model("resnet", 0.25, 8, 3, 10))  # shortcut 4 -> 8 channels
    assert channels_last_ok(create_model("resnet", 1.0, 8, 3, 10))  # shortcuts from 16 and 32 channels
    assert not channels_last_ok(create_model("wrn", 0.25, 10, 3, 10))


def test_channels_last_training_matches_nchw_on_one_channel_images():
    digits_like = make_synthetic((1, 8, 8), num_classes=4, n_train=256, n_test=64, seed=1, signal=1.0)
    a = train_member("cnn3", 0.5, None, digits_like, 20, 3, FAST)
    b = train_member("cnn3", 0.5, None, digits_like, 20, 3, TrainConfig(lr=0.05, batch_size=32, channels_last=False))
    torch.testing.assert_close(a.test_logprobs[20], b.test_logprobs[20], atol=ATOL, rtol=RTOL)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown member training method"):
        make_trainer("parallel")
    assert select_trainer("sequential") is train_sequential


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_vectorized_equals_sequential_on_gpu(small):
    cfg = TrainConfig(lr=0.05, batch_size=32, device="cuda")
    seq = [train_member("cnn3", 0.25, 2, small, 20, s, cfg) for s in (1, 2)]
    _assert_same(seq, train_members_vectorized("cnn3", 0.25, 2, small, 20, (1, 2), cfg), atol=1e-4)


def test_search_trial_and_sweep_job_honour_members(small, monkeypatch):
    """--members reaches the trainer in a search trial and in a sweep job, with the same metrics as sequential."""
    import tuneall.training.vectorized
    from tuneall.planning.factory import Resources
    from tuneall.runner import TrialContext
    from tuneall.sweeping.driver import run_job
    from tuneall.tuning.driver import trial_metrics

    used = []
    real = tuneall.training.vectorized.train_vectorized
    monkeypatch.setattr(tuneall.training.vectorized, "train_vectorized", lambda *a, **kw: used.append(1) or real(*a, **kw))
    point = {"family": "cnn3", "width": 0.25, "depth": 2, "k": 2, "data_fraction": 1.0, "lr": 0.05, "momentum": 0.9,
             "batch_size": 32}
    p = param_count("cnn3", 0.25, 2, 3, 4, 2)
    ctx = dict(job=trial_metrics, budget=Budget(2 * p * 20, min_steps=5), seeds=1, seed=0,
               objectives=(("ensemble_acc_mean", "max"),))
    seq = trial_metrics({"point": point}, TrialContext(**ctx, resources=Resources(cpus=1)), small)
    assert used == []
    vec = trial_metrics({"point": point}, TrialContext(**ctx, resources=Resources(cpus=1, members="vectorized")), small)
    assert used == [1] and seq["steps"] == vec["steps"] == 20
    assert vec["ensemble_acc_mean"] == pytest.approx(seq["ensemble_acc_mean"], abs=1e-4)
    assert vec["ensemble_nll_mean"] == pytest.approx(seq["ensemble_nll_mean"], abs=1e-4)

    job = {"point": point, "budgets": [2 * p * 10, 2 * p * 20]}
    jctx = dict(job=run_job, unit="param-steps", min_steps=5, seeds=1, seed=0, rules=("mean",))
    a = run_job(job, TrialContext(**jctx, resources=Resources(cpus=1)), small)
    b = run_job(job, TrialContext(**jctx, resources=Resources(cpus=1, members="vectorized")), small)
    assert used == [1, 1] and a["member_steps"] == b["member_steps"] == 2 * 20
    import json

    for ra, rb in zip(json.loads(a["cells_json"]), json.loads(b["cells_json"])):
        assert (ra["budget"], ra["steps"]) == (rb["budget"], rb["steps"])
        assert rb["ensemble_acc"] == pytest.approx(ra["ensemble_acc"], abs=1e-4)


def test_vectorised_members_print_the_heartbeat(capsys):
    data = load_dataset("digits")
    train_members_vectorized("cnn3", 0.25, None, data, 20, (0, 1), TrainConfig(batch_size=32, heartbeat_s=1e-9))
    lines = capsys.readouterr().out.splitlines()
    assert lines == [ln for ln in lines if ln.startswith("tuneall: cnn3 w=0.25 seeds 0, 1 (vectorised): step ")]
    assert [ln.split(": step ")[1].split(" (")[0] for ln in lines] == ["10/20", "20/20"]
