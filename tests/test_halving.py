"""Successive halving: predictions at the full budget from each allocation's own anytime curve, promotion of every
candidate possibly tied with the leader, and a resume that keeps finished rungs."""

from __future__ import annotations

import numpy as np
import pytest

from tuneall.tuning import halving as H


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
