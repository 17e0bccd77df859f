"""The grading rule for a claim checked in numbers, written once.

A claim says an effect has a sign (ensembles beat the single model: effect > 0; ...). The effect is a contrast of
cells formed per seed and averaged, d_r for seeds r = 1..n (repeat r of every allocation shares its seeds, so the
contrast is paired). The evidence is a one-sided p-value from the distribution that fits the seeds at hand:

- **t with n - 1 degrees of freedom**: t = mean(d) / (sd(d) / sqrt(n)), p = P(T_{n-1} >= t) for a claim that the
  effect is positive (``direction="greater"``), P(T_{n-1} <= t) for a negative one. The old rule "|effect| > 2 SE"
  read as p ~ 2.3 % under a normal null; with 3 seeds (2 df) 2 SE is p = 9.2 %, with 5 seeds 5.8 %: two rows the
  audit found REPRODUCED sat at p = 0.074 and 0.079. A t quantile is what the standard error's own noise costs.
- **Selection accounted for**: a claim about "the best ensemble" grades a cell that was *picked* among
  ``candidates`` by the same numbers, which inflates its effect (winner's curse: +0.11 and +0.18 points in the
  audit). The rule pays for the pick with Bonferroni: p_adj = min(1, candidates x p). Valid whatever rule picked
  the cell (the union bound covers every candidate), so the false-REPRODUCED rate stays at or below ``alpha``.
  When the picked cell must beat *several* rivals (every single model), it is tested against each and the largest
  p counts (intersection-union: no correction needed over the rivals), see :func:`best_against`.

Verdicts, at ``alpha`` = :data:`ALPHA` (0.05, one-sided):

- ``REPRODUCED``: the effect is in the claimed direction and p_adj < alpha.
- ``WEAK``: in the claimed direction, p_adj >= alpha (or no noise estimate: one seed, or every seed's difference
  identical, which with accuracies quantised at 1/n_test happens by coincidence).
- ``NOT TESTED``: the grid cannot test the claim as stated (say why in ``basis``); never a proxy graded instead.
- ``NOT REPRODUCED``: otherwise: the effect is zero, against the claimed direction, or not a number.

``tests/test_grading.py`` checks the false-REPRODUCED rate on a simulated null (3 and 5 seeds, with and without a
pick among 6 candidates) is at most alpha, and that the old 2-SE rule exceeds it.

:func:`verdict`, :func:`combined` and :func:`verdict_line` are the one path from a measured effect to the words in
each ``findings.md`` and in ``results/README.md``: no verdict word there is written by hand.

Light: the standard library at import; scipy.special only inside :func:`p_value`.
"""

from __future__ import annotations

import math

REPRODUCED, WEAK, NOT_TESTED, NOT_REPRODUCED = "REPRODUCED", "WEAK", "NOT TESTED", "NOT REPRODUCED"
GRADES = (REPRODUCED, WEAK, NOT_TESTED, NOT_REPRODUCED)  # strongest first: a claim of parts is its weakest
ALPHA = 0.05
DIRECTIONS = ("greater", "less")


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, but got {direction!r}")


def p_value(effect: float, se: float, n: int, direction: str = "greater") -> float:
    """One-sided p of a paired mean ``effect`` with standard error ``se`` over ``n`` seeds: Student t, n - 1 df.
    NaN where there is no noise estimate (n < 2, se NaN, infinite or 0) or the effect is not a number."""
    _check_direction(direction)
    effect, se = float(effect), float(se)
    if se < 0:
        raise ValueError(f"se must be >= 0 (or NaN when unknown), but got {se!r}")
    if n < 2 or not math.isfinite(effect) or not math.isfinite(se) or se == 0:
        return math.nan
    from scipy.special import stdtr  # Student t CDF as a plain ufunc: stats.t.sf costs 100x more per call

    t = effect / se if direction == "greater" else -effect / se
    return float(stdtr(n - 1, -t))


def adjusted(p: float, candidates: int = 1) -> float:
    """Bonferroni for a cell picked among ``candidates``: min(1, candidates x p) (NaN stays NaN)."""
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise ValueError(f"candidates must be an integer >= 1, but got {candidates!r}")
    return p if math.isnan(p) else min(1.0, candidates * p)


def grade(effect: float, p: float, direction: str = "greater", alpha: float = ALPHA) -> str:
    """REPRODUCED / WEAK / NOT REPRODUCED for ``effect`` with one-sided (already adjusted) p-value ``p`` against a
    claim that the effect is positive (``direction="greater"``) or negative (``"less"``); module docstring."""
    _check_direction(direction)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), but got {alpha!r}")
    signed = float(effect) if direction == "greater" else -float(effect)
    if not math.isfinite(signed) or signed <= 0:
        return NOT_REPRODUCED
    return REPRODUCED if float(p) < alpha else WEAK  # NaN < alpha is False: no noise estimate is WEAK


def best_against(candidates, rivals, direction: str = "greater") -> dict:
    """The best of ``candidates`` against every one of ``rivals``, selection paid for.

    ``candidates`` and ``rivals``: lists of per-seed value lists, aligned on the seeds (NaN where a cell lacks a
    seed; only seeds every compared pair has count). The pick is the candidate with the best mean; it is tested
    against each rival (paired t, n - 1 df) and the largest p counts (it must beat them all), times
    len(candidates) (Bonferroni for the pick). Returns {pick, rival (the closest), effect, se, n, p, candidates}.
    """
    _check_direction(direction)
    if not candidates or not rivals:
        raise ValueError("best_against needs at least one candidate and one rival")
    sign = 1.0 if direction == "greater" else -1.0

    def mean(v):
        v = [x for x in v if math.isfinite(x)]
        return sum(v) / len(v) if v else -math.inf

    pick = max(range(len(candidates)), key=lambda i: sign * mean(candidates[i]))
    worst = None
    for j, rival in enumerate(rivals):
        d = [a - b for a, b in zip(candidates[pick], rival) if math.isfinite(a) and math.isfinite(b)]
        n = len(d)
        e = sum(d) / n if n else math.nan
        se = math.sqrt(sum((x - e) ** 2 for x in d) / (n - 1) / n) if n >= 2 else math.nan
        p = p_value(e, se, n, direction) if n else math.nan
        # the rival that makes the claim hardest: largest p (NaN, no noise estimate, counts as the largest)
        key = (math.isnan(p) or not sign * e > 0, p if not math.isnan(p) else 1.0)
        if worst is None or key > worst[0]:
            worst = (key, {"pick": pick, "rival": j, "effect": e, "se": se, "n": n, "p": p})
    out = worst[1]
    out["p"] = adjusted(out["p"], len(candidates))
    out["candidates"] = len(candidates)
    return out


# --- verdict lines: the one path from a measured effect to the words in findings.md and results/README.md ---------

VERDICT_COLUMNS = ["claim", "quote", "effect", "se", "n", "direction", "p", "candidates", "verdict", "basis"]


def verdict(claim: str, effect: float, se: float, n: int, direction: str = "greater",
            basis: str = "paired over seeds", candidates: int = 1, alpha: float = ALPHA, quote: str = "",
            p: float | None = None) -> dict:
    """One graded claim as a record (:data:`VERDICT_COLUMNS`): ``effect`` and its standard error ``se`` over ``n``
    seeds; p from :func:`p_value` (or given, e.g. by :func:`best_against`) times ``candidates`` when the cell was
    picked among that many; ``quote``: the seed's own words for the claim."""
    if p is None:
        p = adjusted(p_value(effect, se, n, direction), candidates)
    return {"claim": claim, "quote": quote, "effect": float(effect), "se": float(se), "n": int(n),
            "direction": direction, "p": float(p), "candidates": int(candidates),
            "verdict": grade(effect, p, direction, alpha), "basis": basis}


def not_tested(claim: str, reason: str, quote: str = "") -> dict:
    """A claim the grid cannot test as stated: NOT TESTED with the reason (no proxy graded in its place)."""
    return {"claim": claim, "quote": quote, "effect": math.nan, "se": math.nan, "n": 0, "direction": "greater",
            "p": math.nan, "candidates": 1, "verdict": NOT_TESTED, "basis": reason}


def weakest(grades) -> str:
    """The weakest of several grades (a claim made of parts holds only as well as its weakest part)."""
    grades = list(grades)
    if not grades:
        raise ValueError("weakest() needs at least one grade")
    bad = [g for g in grades if g not in GRADES]
    if bad:
        raise ValueError(f"unknown grade(s) {bad}; expected one of {GRADES}")
    return max(grades, key=GRADES.index)


def combined(claim: str, parts: list[dict], quote: str = "") -> dict:
    """A claim made of parts: graded as the weakest part; the effect, SE and p shown are the weakest part's."""
    worst = max(parts, key=lambda p: GRADES.index(p["verdict"]))
    return {**worst, "claim": claim, "quote": quote or worst.get("quote", ""),
            "verdict": weakest(p["verdict"] for p in parts),
            "basis": f"weakest of {len(parts)} parts ({worst['basis']})"}


def effect_text(effect: float, se: float, scale: float = 100.0, unit: str = "pts") -> str:
    """'+1.03 ± 0.24 pts (4.3 SE)': an effect and its standard error, in points by default."""
    if not math.isfinite(float(effect)):
        return "n/a"
    z = abs(effect) / se if se > 0 else math.inf
    zs = "" if math.isnan(se) else f", {z:.1f} SE" if math.isfinite(z) else ", SE 0"
    sd = "?" if math.isnan(se) else f"{scale * se:.2f}"
    return f"{scale * effect:+.2f} ± {sd} {unit}{zs}"


def p_text(v: dict) -> str:
    """'p = 0.012' (with 'x6 picks' when the cell was picked among 6), or 'p n/a'."""
    p = float(v.get("p", math.nan))
    picks = int(v.get("candidates", 1) or 1)
    return ("p n/a" if math.isnan(p) else f"p = {p:.2g}") + (f", best of {picks} (x{picks})" if picks > 1 else "")


def verdict_line(v: dict, scale: float = 100.0, unit: str = "pts") -> str:
    """The Markdown line of a graded claim: '**VERDICT**: claim (effect ± SE; p; n seeds, basis).' plus the quote."""
    quote = f' Seed: "{v["quote"]}"' if v.get("quote") else ""
    if v["verdict"] == NOT_TESTED:
        return f"**{NOT_TESTED}**: {v['claim']} ({v['basis']}).{quote}"
    one = " (one seed: no noise estimate)" if v["n"] < 2 else ""
    return (f"**{v['verdict']}**: {v['claim']} ({effect_text(v['effect'], v['se'], scale, unit)}; {p_text(v)}; "
            f"{v['n']} seeds, {v['basis']}; claimed {'> 0' if v['direction'] == 'greater' else '< 0'}){one}.{quote}")
