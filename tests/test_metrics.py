"""Combination rules and metrics on hand-made probabilities with hand-computed values.

The metrics read log-probabilities (members' log_softmax outputs): hand-made probabilities go in through ``L``."""

from __future__ import annotations

import math

import pytest
import torch

from tuneall.training import metrics as M


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def L(x, dtype=torch.float64):
    """Log-probabilities of hand-made probabilities."""
    return t(x, dtype).log()


def P(logp):
    """Back to probabilities."""
    return logp.exp()


# ----------------------------------------------------------------------------------------------------------------
# combine


def test_combine_mean_by_hand():
    probs = t([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]],
               [[0.3, 0.6, 0.1], [0.5, 0.3, 0.2]]])
    out = P(M.combine(probs.log(), "mean"))
    assert out.shape == (2, 3)
    torch.testing.assert_close(out, t([[0.5, 0.4, 0.1], [0.3, 0.2, 0.5]]))
    assert P(M.combine(probs.log())).equal(out)  # mean is the default


def test_combine_geometric_by_hand():
    probs = t([[[0.8, 0.1, 0.1]], [[0.2, 0.4, 0.4]]])
    # sqrt(0.16) = 0.4, sqrt(0.04) = 0.2, sqrt(0.04) = 0.2 -> normalised 0.5, 0.25, 0.25
    torch.testing.assert_close(P(M.combine(probs.log(), "geometric")), t([[0.5, 0.25, 0.25]]))
    probs = t([[[0.5, 0.5]], [[0.9, 0.1]], [[0.4, 0.6]]])
    g = [(0.5 * 0.9 * 0.4) ** (1 / 3), (0.5 * 0.1 * 0.6) ** (1 / 3)]
    torch.testing.assert_close(P(M.combine(probs.log(), "geometric")), t([[g[0] / sum(g), g[1] / sum(g)]]))


def test_combine_geometric_exact_zero_rules_a_class_out_and_leaves_the_rest_exact():
    # Member 0 gives class 2 probability exactly 0 (log -inf): the geometric mean gives it 0, nothing is clamped,
    # and classes 0 and 1 keep their exact normalised geometric means sqrt(0.5 * 0.2), sqrt(0.5 * 0.3).
    out = P(M.combine(L([[[0.5, 0.5, 0.0]], [[0.2, 0.3, 0.5]]]), "geometric"))
    g = [math.sqrt(0.1), math.sqrt(0.15)]
    torch.testing.assert_close(out, t([[g[0] / sum(g), g[1] / sum(g), 0.0]]))


def test_mean_and_geometric_can_disagree_on_argmax():
    # Member 0 is confident in class 0; member 1 nearly rules class 0 out and splits between 1 and 2.
    probs = t([[[0.98, 0.01, 0.01]], [[0.001, 0.5, 0.499]]])
    mean, geo = P(M.combine(probs.log(), "mean")), P(M.combine(probs.log(), "geometric"))
    torch.testing.assert_close(mean, t([[0.4905, 0.255, 0.2545]]))
    assert mean.argmax(-1).item() == 0
    assert geo.argmax(-1).item() == 1
    labels = torch.tensor([1])
    assert M.accuracy(mean, labels) == 0.0
    assert M.accuracy(geo, labels) == 1.0


@pytest.mark.parametrize("scale", [10.0, 100.0, 1000.0])
def test_geometric_in_log_space_is_exact_on_extreme_logits(scale):
    # Members' float32 log_softmax outputs, as training stores them, from logits of scale 10-1000.
    gen = torch.Generator().manual_seed(int(scale))
    z = (torch.randn(5, 4000, 10, generator=gen) * scale).double()  # (k, N, C), values exact in float32
    logp = torch.log_softmax(z.float(), -1)
    exact_log = torch.log_softmax(torch.log_softmax(z, -1).mean(0), -1)  # log softmax(mean_j log_softmax(z_j))
    exact = exact_log.exp()  # float64
    out = M.combine(logp, "geometric")
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # float32 log-probabilities of magnitude ~scale carry ~6e-8 x scale rounding; measured error <= 6e-7 x scale
    torch.testing.assert_close(out.double(), exact_log, atol=1e-6 * scale, rtol=0)
    torch.testing.assert_close(out.double().exp().sum(-1), torch.ones(4000, dtype=torch.float64), atol=1e-6 * scale,
                               rtol=0)
    assert (out.argmax(-1) == exact.argmax(-1)).all()  # argmax agreement 100 %
    # The old rule (probabilities floored at 1e-12 before the log) ties classes that underflowed: it flips argmaxes
    # at these scales, which is what this test guards against.
    clamped = torch.softmax(logp.exp().clamp_min(1e-12).log().mean(0), -1)
    if scale >= 100:
        assert (clamped.argmax(-1) != exact.argmax(-1)).float().mean() > 0.05


def test_mean_in_log_space_is_exact_on_extreme_logits():
    gen = torch.Generator().manual_seed(1)
    z = (torch.randn(4, 2000, 10, generator=gen) * 300).double()
    out = M.combine(torch.log_softmax(z.float(), -1), "mean")
    exact = torch.softmax(z, -1).mean(0)
    torch.testing.assert_close(out.exp().double(), exact, atol=1e-6, rtol=0)
    # Where two members are each sure of a different class the mean ties exactly (0.25 / 0.25): argmax is arbitrary
    # there, so agreement is checked where the exact top two differ (about half the rows at this scale).
    top2 = exact.log().topk(2, -1).values
    separated = top2[:, 0] - top2[:, 1] > 1e-3
    assert separated.sum() > 500
    assert (out.argmax(-1) == exact.argmax(-1))[separated].all()
    # log of the mean probability stays exact far below float32's smallest probability
    torch.testing.assert_close(out.double(), torch.logsumexp(torch.log_softmax(z, -1), 0) - math.log(4),
                               atol=1e-2, rtol=1e-5)


def test_combine_vote_majority():
    # 3 members: 2 vote class 2, 1 votes class 0 (with a huge probability that must not override the vote).
    probs = t([[[0.1, 0.2, 0.7]], [[0.3, 0.3, 0.4]], [[0.99, 0.005, 0.005]]])
    out = P(M.combine(probs.log(), "vote"))
    assert out.argmax(-1).item() == 2
    torch.testing.assert_close(out.sum(-1), t([1.0]))
    torch.testing.assert_close(out, t([[1 / 3, 0.0, 2 / 3]]), atol=1e-5, rtol=0)
    # The mean of the same probabilities picks class 0: the vote is really a vote.
    assert M.combine(probs.log(), "mean").argmax(-1).item() == 0


def test_combine_vote_tie_broken_by_mean_probability():
    # Two members, one vote each for classes 0 and 1: the tie goes to the class with the higher mean probability.
    probs = t([[[0.6, 0.4, 0.0], [0.55, 0.45, 0.0]],
               [[0.1, 0.9, 0.0], [0.05, 0.05, 0.9]]])
    out = P(M.combine(probs.log(), "vote"))
    # input 0: votes 0.5/0.5/0, mean probs 0.35/0.65 -> class 1. input 1: votes 0.5/0/0.5, mean 0.3/0.25/0.45 -> 2.
    assert out.argmax(-1).tolist() == [1, 2]
    torch.testing.assert_close(out[0], t([0.5, 0.5, 0.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.sum(-1), t([1.0, 1.0]))
    # Swapping the members' confidence flips the tie-break.
    probs2 = t([[[0.9, 0.1, 0.0]], [[0.45, 0.55, 0.0]]])
    assert M.combine(probs2.log(), "vote").argmax(-1).item() == 0


def test_combine_vote_tie_float32_four_members():
    probs = t([[[0.5, 0.3, 0.2]], [[0.4, 0.35, 0.25]], [[0.2, 0.7, 0.1]], [[0.3, 0.4, 0.3]]], torch.float32)
    # votes 2 / 2 / 0; mean probs 0.35 / 0.4375 -> class 1
    out = P(M.combine(probs.log(), "vote"))
    assert out.dtype == torch.float32
    assert out.argmax(-1).item() == 1


def test_combine_rejects_bad_input():
    with pytest.raises(ValueError, match="rule"):
        M.combine(t([[[0.5, 0.5]]]), "median")
    with pytest.raises(ValueError, match="shape"):
        M.combine(t([[0.5, 0.5]]), "mean")


def test_combine_single_member_is_identity_for_mean_and_geometric():
    p = t([[[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]])
    torch.testing.assert_close(P(M.combine(p.log(), "mean")), p[0])
    torch.testing.assert_close(P(M.combine(p.log(), "geometric")), p[0])
    assert M.combine(p.log(), "vote").argmax(-1).tolist() == [2, 0]


# ----------------------------------------------------------------------------------------------------------------
# accuracy / nll / ece / disagreement


def test_accuracy_by_hand():
    probs = L([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]])
    assert M.accuracy(probs, torch.tensor([0, 1, 0, 1])) == 0.5
    assert M.accuracy(probs, torch.tensor([0, 1, 1, 0])) == 1.0
    assert M.accuracy(probs, torch.tensor([1, 0, 0, 1])) == 0.0


def test_nll_by_hand():
    probs = L([[0.5, 0.5], [0.75, 0.25]])
    labels = torch.tensor([0, 1])
    assert M.nll(probs, labels) == pytest.approx((math.log(2) + math.log(4)) / 2, abs=1e-12)
    assert M.nll(L([[1.0, 0.0]]), torch.tensor([0])) == pytest.approx(0.0, abs=1e-12)


def test_nll_of_a_confident_mistake_is_exact_not_clamped():
    # Logits 1000 apart: the wrong class's probability underflows to 0, its log-probability is exactly -2000.
    # (Probabilities clamped at 1e-12 said 27.6.)
    logp = torch.log_softmax(t([[1000.0, -1000.0]], torch.float32), -1)
    assert M.nll(logp, torch.tensor([1])) == pytest.approx(2000.0, rel=1e-6)


def test_ece_by_hand():
    probs = L([
        [0.9, 0.05, 0.03, 0.02],  # conf 0.9, label 0: correct
        [0.9, 0.05, 0.03, 0.02],  # conf 0.9, label 1: wrong
        [0.65, 0.35, 0.0, 0.0],  # conf 0.65, label 0: correct
        [0.3, 0.25, 0.25, 0.2],  # conf 0.3, label 1: wrong
    ])
    labels = torch.tensor([0, 1, 0, 1])
    # bins of width 1/15: {0.9, 0.9} -> 2/4 * |0.9 - 0.5|; {0.65} -> 1/4 * |0.65 - 1|; {0.3} -> 1/4 * |0.3 - 0|
    expected = 0.5 * 0.4 + 0.25 * 0.35 + 0.25 * 0.3
    assert M.ece(probs, labels) == pytest.approx(expected, abs=1e-12)
    # With 1 bin everything is pooled: |mean conf - accuracy| = |0.6875 - 0.5|
    assert M.ece(probs, labels, bins=1) == pytest.approx(0.1875, abs=1e-12)


def test_ece_extremes():
    sure = L([[1.0, 0.0], [0.0, 1.0]])
    assert M.ece(sure, torch.tensor([0, 1])) == 0.0  # confident and right
    assert M.ece(sure, torch.tensor([1, 0])) == pytest.approx(1.0)  # confident and wrong (conf 1.0 is binned)
    # Calibrated in its bin: conf 0.5 twice, one right one wrong.
    half = L([[0.5, 0.5], [0.5, 0.5]])
    assert M.ece(half, torch.tensor([0, 1])) == pytest.approx(0.0, abs=1e-12)


def test_disagreement_by_hand():
    preds = [[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 0]]
    probs = (torch.nn.functional.one_hot(torch.tensor(preds), 2).double() * 0.8 + 0.1).log()
    # pairs: (0,1) 1/4, (0,2) 3/4, (1,2) 2/4 -> mean 1/2
    assert M.disagreement(probs) == pytest.approx(0.5)
    assert M.disagreement(probs[:2]) == pytest.approx(0.25)
    assert M.disagreement(probs[:1]) == 0.0
    assert M.disagreement(torch.stack([probs[0], probs[0]])) == 0.0


def test_evaluate_ensemble_by_hand():
    probs = L([[[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]],
               [[0.7, 0.3], [0.2, 0.8], [0.4, 0.6]]])
    labels = torch.tensor([0, 0, 1])
    out = M.evaluate_ensemble(probs, labels, "mean")
    assert set(out) == set(M.ENSEMBLE_METRICS)
    # ensemble: [0.8, 0.2], [0.4, 0.6], [0.3, 0.7] -> predictions 0, 1, 1 -> 2/3 correct
    assert out["ensemble_acc"] == pytest.approx(2 / 3)
    assert out["ensemble_nll"] == pytest.approx(-(math.log(0.8) + math.log(0.4) + math.log(0.7)) / 3)
    assert out["member_acc_mean"] == pytest.approx((1.0 + 2 / 3) / 2)  # member 0: 3/3; member 1: 2/3
    assert out["disagreement"] == pytest.approx(1 / 3)


# ----------------------------------------------------------------------------------------------------------------
# aggregate over repeats


def test_aggregate_mean_std_worst():
    runs = [
        {"ensemble_acc": 0.8, "ensemble_nll": 0.5, "ensemble_ece": 0.02, "disagreement": 0.3},
        {"ensemble_acc": 0.6, "ensemble_nll": 0.9, "ensemble_ece": 0.05, "disagreement": 0.1},
        {"ensemble_acc": 0.7, "ensemble_nll": 0.7, "ensemble_ece": 0.08, "disagreement": 0.2},
    ]
    out = M.aggregate(runs)
    assert out["ensemble_acc_mean"] == pytest.approx(0.7)
    assert out["ensemble_acc_std"] == pytest.approx(0.1)  # sample std (ddof = 1)
    assert out["ensemble_acc_worst"] == 0.6  # accuracy: worst is the minimum
    assert out["ensemble_nll_mean"] == pytest.approx(0.7)
    assert out["ensemble_nll_std"] == pytest.approx(0.2)
    assert out["ensemble_nll_worst"] == 0.9  # nll: worst is the maximum
    assert out["ensemble_ece_worst"] == 0.08
    assert out["disagreement_worst"] == 0.1  # least diverse seed
    assert len(out) == 3 * len(runs[0])


def test_aggregate_single_run_has_zero_std():
    out = M.aggregate([{"ensemble_acc": 0.42, "ensemble_nll": 1.3}])
    assert out == {"ensemble_acc_mean": 0.42, "ensemble_acc_std": 0.0, "ensemble_acc_worst": 0.42,
                   "ensemble_nll_mean": 1.3, "ensemble_nll_std": 0.0, "ensemble_nll_worst": 1.3}


def test_aggregate_two_runs_std():
    out = M.aggregate([{"ensemble_acc": 0.5}, {"ensemble_acc": 0.9}])
    assert out["ensemble_acc_std"] == pytest.approx(math.sqrt(0.08))  # ((0.2^2 + 0.2^2) / 1) ** 0.5
