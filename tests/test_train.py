"""Training members (determinism, divergence, anytime evaluation) and running a whole trial over seeds."""

from __future__ import annotations

import math

import pytest
import torch

from tuneall.core import bitvec

from tuneall.training import metrics as M
from tuneall.core.budget import Budget
from tuneall.data import load_dataset, make_synthetic
from tuneall.core.errors import ConfigError
from tuneall.planning.factory import Allocation, make_trial_plan
from tuneall.training.member import BatchSampler, TrainConfig, train_member
from tuneall.training.trial import run_trial, train_sequential

FAST = TrainConfig(lr=0.05, batch_size=32)
HUGE_LR = TrainConfig(lr=1e20, batch_size=32)  # loss turns non-finite within the first 10 steps


@pytest.fixture(scope="module")
def small():
    return make_synthetic((3, 8, 8), num_classes=4, n_train=256, n_test=64, seed=0, signal=1.0)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_same_seed_identical(small):
    a = train_member("cnn3", 0.25, 2, small, 20, seed=5, cfg=FAST)
    b = train_member("cnn3", 0.25, 2, small, 20, seed=5, cfg=FAST)
    assert list(a.test_logprobs) == list(b.test_logprobs) == [20]
    assert torch.equal(a.test_logprobs[20], b.test_logprobs[20])
    assert a.final_loss == b.final_loss
    assert a.steps_done == b.steps_done == 20
    assert not a.diverged


def test_different_seeds_differ(small):
    a = train_member("cnn3", 0.25, 2, small, 20, seed=5, cfg=FAST)
    b = train_member("cnn3", 0.25, 2, small, 20, seed=6, cfg=FAST)
    assert not torch.equal(a.test_logprobs[20], b.test_logprobs[20])
    assert a.final_loss != b.final_loss


def test_member_result_fields(small):
    r = train_member("cnn3", 0.25, 2, small, 20, seed=0, cfg=FAST)
    p = r.test_logprobs[20]  # log_softmax outputs
    assert p.shape == (64, 4) and p.dtype == torch.float32 and p.device.type == "cpu"
    torch.testing.assert_close(p.exp().sum(-1), torch.ones(64))
    assert (p <= 0).all() and torch.isfinite(p).all()
    assert r.seed == 0 and r.steps == 20
    assert math.isfinite(r.final_loss) and r.final_loss > 0
    assert r.train_time_s > 0


def test_huge_lr_diverges_without_raising(small):
    r = train_member("cnn3", 0.25, 1, small, 40, seed=0, cfg=HUGE_LR)
    assert r.diverged is True
    assert r.steps_done < 40
    assert math.isnan(r.final_loss)
    assert 40 not in r.test_logprobs


def test_eval_steps_anytime(small):
    r = train_member("cnn3", 0.25, 2, small, 30, seed=3, cfg=FAST, eval_steps=(10, 20, 0, -5, 30, 99))
    assert sorted(r.test_logprobs) == [10, 20, 30]  # out-of-range steps ignored, the final step always evaluated
    assert not torch.equal(r.test_logprobs[10], r.test_logprobs[30])
    # Anytime evaluation: the model at step 10 of a 30-step run is the model of a 10-step run with the same seed.
    short = train_member("cnn3", 0.25, 2, small, 10, seed=3, cfg=FAST)
    assert torch.equal(r.test_logprobs[10], short.test_logprobs[10])


def test_batch_sampler_epochs_cover_everything_once():
    s = BatchSampler(10, 3, seed=0)
    batches = [s.next() for _ in range(3)]  # one epoch of 3 full batches, the ragged 10th row dropped
    seen = torch.cat(batches)
    assert len(seen) == 9 and len(set(seen.tolist())) == 9
    assert all(len(b) == 3 for b in batches)
    big = BatchSampler(5, 128, seed=0)
    assert sorted(big.next().tolist()) == [0, 1, 2, 3, 4]  # batch capped at n


def test_train_config_validation():
    for kw in ({"lr": 0}, {"lr": -1}, {"lr": float("nan")}, {"momentum": -0.1}, {"batch_size": 0},
               {"batch_size": 1.5}, {"weight_decay": float("inf")}, {"eval_batch_size": 0}, {"device": "bogus"}):
        with pytest.raises(ConfigError):
            TrainConfig(**kw)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            TrainConfig(device="cuda")


# ----------------------------------------------------------------------------------------------------------------
# run_trial


def _plan(info, k, steps, train, repeats=1, min_steps=5, width=0.25, depth=1):
    from tuneall.models import param_count

    p = param_count("cnn3", width, depth, info.in_channels, info.num_classes, info.spatial_dims)
    plan = make_trial_plan(Allocation("cnn3", width, depth, k), Budget(k * p * steps, min_steps=min_steps), info,
                           train, repeats=repeats)
    assert plan.steps == steps
    return plan


def test_run_trial_diverged_status_with_finite_metrics(small):
    plan = _plan(small.info, k=2, steps=30, train=HUGE_LR)
    res = run_trial(plan, small)
    assert res.status == "diverged"
    assert len(res.members) == 2 and all(m["diverged"] for m in res.members)
    m = res.metrics()
    assert m["status"] == "diverged" and m["n_diverged"] == 2
    for key, v in res.summary.items():
        assert math.isfinite(v), key
    # Diverged members predict uniformly: NLL = ln(C) and accuracy = the share of class 0 (argmax of a tie).
    assert res.summary["ensemble_nll_mean"] == pytest.approx(math.log(4), rel=1e-6)
    assert res.summary["ensemble_acc_mean"] == pytest.approx((small.y_test == 0).double().mean().item())


def test_run_trial_digits_rows_and_aggregates(digits):
    """cnn3 w=0.5, k=2, 2 seeds on digits: per-member rows and mean / std / worst consistent with them."""
    plan = _plan(digits.info, k=2, steps=15, train=TrainConfig(lr=0.05, batch_size=64), repeats=2, width=0.5,
                 depth=None)
    assert plan.params_per_member == 24_170
    recorded = []

    def trainer(plan, data, *args):  # wraps the default trainer, whatever extra arguments run_trial passes
        out = train_sequential(plan, data, *args)
        recorded.extend(out)
        return out

    calls = []
    res = run_trial(plan, digits, progress=lambda r, i, m: calls.append((r, i, m.seed)), trainer=trainer)
    assert res.status == "ok"
    assert calls == [(0, 0, 0), (0, 1, 1), (1, 0, 1000), (1, 1, 1001)]

    # One row per (repeat, member) with the plan's seeds.
    assert [(m["repeat"], m["member"], m["seed"]) for m in res.members] == [(0, 0, 0), (0, 1, 1), (1, 0, 1000),
                                                                            (1, 1, 1001)]
    assert all(m["steps_done"] == 15 and not m["diverged"] for m in res.members)
    assert len(res.repeats) == 2

    # Recompute each repeat's ensemble metrics and member rows from the members' probabilities.
    labels = digits.y_test
    for r, results in enumerate(recorded):
        logp = torch.stack([x.test_logprobs[15] for x in results])
        expected = M.evaluate_ensemble(logp, labels, "mean")
        val_logp = torch.stack([x.val_logprobs[15] for x in results])  # the validation split, evaluated at once
        expected.update({f"val_{k}": v for k, v in M.evaluate_ensemble(val_logp, digits.y_val, "mean").items()})
        rep = dict(res.repeats[r])
        bits = bitvec.decode(rep.pop(bitvec.CORRECT_COLUMN))  # the per-example bits the tie set resamples
        assert rep == pytest.approx(expected)
        assert bits.mean() == pytest.approx(expected["val_ensemble_acc"], abs=1e-12)
        assert len(digits.y_val) == 144 and res.repeats[r]["val_ensemble_acc"] != res.repeats[r]["ensemble_acc"]
        rows = [m for m in res.members if m["repeat"] == r]
        for i, row in enumerate(rows):
            assert row["acc"] == pytest.approx(M.accuracy(logp[i], labels))
            assert row["nll"] == pytest.approx(M.nll(logp[i], labels))
        assert res.repeats[r]["member_acc_mean"] == pytest.approx(sum(row["acc"] for row in rows) / 2)

    # Aggregates over the repeats.
    s = res.summary
    for name, better in M.ENSEMBLE_METRICS.items():
        vals = [rep[name] for rep in res.repeats]
        mean = sum(vals) / 2
        assert s[f"{name}_mean"] == pytest.approx(mean)
        assert s[f"{name}_std"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in vals)))  # ddof=1, n=2
        assert s[f"{name}_worst"] == (min(vals) if better == "max" else max(vals))
    assert s["ensemble_acc_worst"] == min(rep["ensemble_acc"] for rep in res.repeats)
    assert s["ensemble_nll_worst"] == max(rep["ensemble_nll"] for rep in res.repeats)
    assert s["ensemble_acc_mean"] > 0.3  # 15 steps already learn digits well above chance (0.1)
    assert res.train_time_s == pytest.approx(sum(m["train_time_s"] for m in res.members))
    assert res.metrics()["n_diverged"] == 0
    if getattr(res, "curve", None):  # anytime curve: its last point is the final ensemble accuracy
        assert res.curve[-1][0] == 15
        assert res.curve[-1][1] == pytest.approx(s["ensemble_acc_mean"])


def test_run_trial_rejects_bad_rule_and_fraction(small):
    plan = _plan(small.info, k=1, steps=5, train=FAST)
    with pytest.raises(ConfigError, match="rule"):
        run_trial(plan, small, rule="median")
    from tuneall.data import with_fraction

    with pytest.raises(ValueError, match="data_fraction"):
        run_trial(plan, with_fraction(small, 0.5))


def test_run_trial_vote_and_geometric_rules(small):
    plan = _plan(small.info, k=3, steps=10, train=FAST)
    recorded = []

    def trainer(plan, data, *args):  # wraps the default trainer, whatever extra arguments run_trial passes
        out = train_sequential(plan, data, *args)
        recorded.extend(out)
        return out

    for rule in ("vote", "geometric"):
        recorded.clear()
        res = run_trial(plan, small, rule=rule, trainer=trainer)
        logp = torch.stack([x.test_logprobs[10] for x in recorded[0]])
        assert res.repeats[0]["ensemble_acc"] == pytest.approx(M.accuracy(M.combine(logp, rule), small.y_test))


def test_training_submodule_is_importable_as_module():
    # The package namespace also exports the api function `train`: the training module must not share its name.
    import tuneall.training.member as T

    assert T.train_member is train_member


def test_heartbeat_prints_progress_and_changes_nothing(capsys):
    data = load_dataset("digits")
    quiet = train_member("cnn3", 0.25, None, data, 30, 0, TrainConfig(batch_size=32))
    assert "tuneall:" not in capsys.readouterr().out
    loud = train_member("cnn3", 0.25, None, data, 30, 0, TrainConfig(batch_size=32, heartbeat_s=1e-9))
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(": ", 2)[2].split(" (")[0] for ln in lines] == ["step 10/30", "step 20/30", "step 30/30"]
    assert lines[0].startswith("tuneall: cnn3 w=0.25 seed 0: step 10/30 (33%) after ")
    assert loud.final_loss == quiet.final_loss and loud.steps_done == quiet.steps_done == 30
