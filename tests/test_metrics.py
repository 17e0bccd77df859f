"""Combination rules and metrics on hand-made probabilities with hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from tuneall import metrics as M


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------------
# combine


def test_combine_mean_by_hand():
    probs = t([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]],
               [[0.3, 0.6, 0.1], [0.5, 0.3, 0.2]]])
    out = M.combine(probs, "mean")
    assert out.shape == (2, 3)
    torch.testing.assert_close(out, t([[0.5, 0.4, 0.1], [0.3, 0.2, 0.5]]))
    assert M.combine(probs) .equal(out)  # mean is the default


def test_combine_geometric_by_hand():
    probs = t([[[0.8, 0.1, 0.1]], [[0.2, 0.4, 0.4]]])
    # sqrt(0.16) = 0.4, sqrt(0.04) = 0.2, sqrt(0.04) = 0.2 -> normalised 0.5, 0.25, 0.25
    torch.testing.assert_close(M.combine(probs, "geometric"), t([[0.5, 0.25, 0.25]]))
    probs = t([[[0.5, 0.5]], [[0.9, 0.1]], [[0.4, 0.6]]])
    g = [(0.5 * 0.9 * 0.4) ** (1 / 3), (0.5 * 0.1 * 0.6) ** (1 / 3)]
    torch.testing.assert_close(M.combine(probs, "geometric"), t([[g[0] / sum(g), g[1] / sum(g)]]))


def test_combine_geometric_rows_sum_to_one_and_survive_zeros():
    probs = t([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]])
    out = M.combine(probs, "geometric")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.sum(-1), t([1.0]))
    # Classes 0 and 1 each have one zero factor (clamped equally), class 2 has two: 0 and 1 tie, 2 is far below.
    torch.testing.assert_close(out[0, 0], out[0, 1])
    assert out[0, 2] < 1e-6


def test_mean_and_geometric_can_disagree_on_argmax():
    # Member 0 is confident in class 0; member 1 nearly rules class 0 out and splits between 1 and 2.
    probs = t([[[0.98, 0.01, 0.01]], [[0.001, 0.5, 0.499]]])
    mean, geo = M.combine(probs, "mean"), M.combine(probs, "geometric")
    torch.testing.assert_close(mean, t([[0.4905, 0.255, 0.2545]]))
    assert mean.argmax(-1).item() == 0
    assert geo.argmax(-1).item() == 1
    labels = torch.tensor([1])
    assert M.accuracy(mean, labels) == 0.0
    assert M.accuracy(geo, labels) == 1.0


def test_combine_vote_majority():
    # 3 members: 2 vote class 2, 1 votes class 0 (with a huge probability that must not override the vote).
    probs = t([[[0.1, 0.2, 0.7]], [[0.3, 0.3, 0.4]], [[0.99, 0.005, 0.005]]])
    out = M.combine(probs, "vote")
    assert out.argmax(-1).item() == 2
    torch.testing.assert_close(out.sum(-1), t([1.0]))
    torch.testing.assert_close(out, t([[1 / 3, 0.0, 2 / 3]]), atol=1e-5, rtol=0)
    # The mean of the same probabilities picks class 0: the vote is really a vote.
    assert M.combine(probs, "mean").argmax(-1).item() == 0


def test_combine_vote_tie_broken_by_mean_probability():
    # Two members, one vote each for classes 0 and 1: the tie goes to the class with the higher mean probability.
    probs = t([[[0.6, 0.4, 0.0], [0.55, 0.45, 0.0]],
               [[0.1, 0.9, 0.0], [0.05, 0.05, 0.9]]])
    out = M.combine(probs, "vote")
    # input 0: votes 0.5/0.5/0, mean probs 0.35/0.65 -> class 1. input 1: votes 0.5/0/0.5, mean 0.3/0.25/0.45 -> 2.
    assert out.argmax(-1).tolist() == [1, 2]
    torch.testing.assert_close(out[0], t([0.5, 0.5, 0.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.sum(-1), t([1.0, 1.0]))
    # Swapping the members' confidence flips the tie-break.
    probs2 = t([[[0.9, 0.1, 0.0]], [[0.45, 0.55, 0.0]]])
    assert M.combine(probs2, "vote").argmax(-1).item() == 0


def test_combine_vote_tie_float32_four_members():
    probs = t([[[0.5, 0.3, 0.2]], [[0.4, 0.35, 0.25]], [[0.2, 0.7, 0.1]], [[0.3, 0.4, 0.3]]], torch.float32)
    # votes 2 / 2 / 0; mean probs 0.35 / 0.4375 -> class 1
    out = M.combine(probs, "vote")
    assert out.dtype == torch.float32
    assert out.argmax(-1).item() == 1


def test_combine_rejects_bad_input():
    with pytest.raises(ValueError, match="rule"):
        M.combine(t([[[0.5, 0.5]]]), "median")
    with pytest.raises(ValueError, match="shape"):
        M.combine(t([[0.5, 0.5]]), "mean")


def test_combine_single_member_is_identity_for_mean_and_geometric():
    p = t([[[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]])
    torch.testing.assert_close(M.combine(p, "mean"), p[0])
    torch.testing.assert_close(M.combine(p, "geometric"), p[0])
    assert M.combine(p, "vote").argmax(-1).tolist() == [2, 0]


# ----------------------------------------------------------------------------------------------------------------
# accuracy / nll / ece / disagreement


def test_accuracy_by_hand():
    probs = t([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]])
    assert M.accuracy(probs, torch.tensor([0, 1, 0, 1])) == 0.5
    assert M.accuracy(probs, torch.tensor([0, 1, 1, 0])) == 1.0
    assert M.accuracy(probs, torch.tensor([1, 0, 0, 1])) == 0.0


def test_nll_by_hand():
    probs = t([[0.5, 0.5], [0.75, 0.25]])
    labels = torch.tensor([0, 1])
    assert M.nll(probs, labels) == pytest.approx((math.log(2) + math.log(4)) / 2, abs=1e-12)
    assert M.nll(t([[1.0, 0.0]]), torch.tensor([0])) == pytest.approx(0.0, abs=1e-12)


def test_nll_of_a_confident_mistake_is_finite():
    v = M.nll(t([[1.0, 0.0]]), torch.tensor([1]))
    assert math.isfinite(v)
    assert v == pytest.approx(-math.log(1e-12), rel=1e-6)


def test_ece_by_hand():
    probs = t([
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
    sure = t([[1.0, 0.0], [0.0, 1.0]])
    assert M.ece(sure, torch.tensor([0, 1])) == 0.0  # confident and right
    assert M.ece(sure, torch.tensor([1, 0])) == pytest.approx(1.0)  # confident and wrong (conf 1.0 is binned)
    # Calibrated in its bin: conf 0.5 twice, one right one wrong.
    half = t([[0.5, 0.5], [0.5, 0.5]])
    assert M.ece(half, torch.tensor([0, 1])) == pytest.approx(0.0, abs=1e-12)


def test_disagreement_by_hand():
    preds = [[0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 0]]
    probs = torch.nn.functional.one_hot(torch.tensor(preds), 2).double() * 0.8 + 0.1
    # pairs: (0,1) 1/4, (0,2) 3/4, (1,2) 2/4 -> mean 1/2
    assert M.disagreement(probs) == pytest.approx(0.5)
    assert M.disagreement(probs[:2]) == pytest.approx(0.25)
    assert M.disagreement(probs[:1]) == 0.0
    assert M.disagreement(torch.stack([probs[0], probs[0]])) == 0.0


def test_evaluate_ensemble_by_hand():
    probs = t([[[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]],
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
