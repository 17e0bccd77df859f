"""The grading rule for a claim checked in numbers, written once.

A claim says an effect has a sign (ensembles beat the single model: effect > 0; the EST moves right: effect > 0;
...). Given the measured effect and its standard error (over seeds, or a bootstrap), the verdict is:

- ``REPRODUCED``: the effect is in the claimed direction and larger than ``n_se`` (default 2) standard errors,
  i.e. |effect| > 2 SE: unlikely to be seed noise (about 2.3 % one-sided under a normal null).
- ``WEAK``: the effect is in the claimed direction but within 2 standard errors: the sign agrees, the evidence
  does not separate it from noise. Also when the standard error is unknown (NaN or infinite): the direction can be
  read, its size against noise cannot.
- ``NOT REPRODUCED``: otherwise: the effect is zero, against the claimed direction, or not a number.

A standard error of 0 (one seed, or identical results on every seed) makes any nonzero effect in the claimed
direction REPRODUCED by the rule's letter (effect > 2 x 0); callers with one seed should say so next to the verdict.

:func:`verdict` (a graded record), :func:`combined` (a claim made of parts: its weakest part) and
:func:`verdict_line` are the one path from a measured effect to the words in each ``findings.md`` and in
``results/README.md`` (the seed examples write ``verdicts.csv`` through them; ``examples/results_readme.py`` builds
the README's table from those files): no verdict word there is written by hand.

Torch-free, no imports beyond the standard library.
"""

from __future__ import annotations

import math

REPRODUCED, WEAK, NOT_REPRODUCED = "REPRODUCED", "WEAK", "NOT REPRODUCED"
GRADES = (REPRODUCED, WEAK, NOT_REPRODUCED)
N_SE = 2.0
DIRECTIONS = ("greater", "less")


def grade(effect: float, se: float, direction: str = "greater", n_se: float = N_SE) -> str:
    """REPRODUCED / WEAK / NOT REPRODUCED for ``effect`` with standard error ``se`` against a claim that the effect
    is positive (``direction="greater"``) or negative (``"less"``); see the module docstring for the rule."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, but got {direction!r}")
    if not (isinstance(n_se, (int, float)) and math.isfinite(n_se) and n_se >= 0):
        raise ValueError(f"n_se must be a finite number >= 0, but got {n_se!r}")
    effect, se = float(effect), float(se)
    if se < 0:
        raise ValueError(f"se must be >= 0 (or NaN when unknown), but got {se!r}")
    signed = effect if direction == "greater" else -effect
    if not math.isfinite(signed) or signed <= 0:
        return NOT_REPRODUCED
    if math.isnan(se) or math.isinf(se):
        return WEAK
    return REPRODUCED if signed > n_se * se else WEAK


# --- verdict lines: the one path from a measured effect to the words in findings.md and results/README.md ---------

VERDICT_COLUMNS = ["claim", "effect", "se", "n", "direction", "verdict", "basis"]


def verdict(claim: str, effect: float, se: float, n: int, direction: str = "greater",
            basis: str = "paired over seeds", n_se: float = N_SE) -> dict:
    """One graded claim as a record (:data:`VERDICT_COLUMNS`): ``effect`` and its standard error ``se`` from ``n``
    seeds (paired over seeds, or a bootstrap: say which in ``basis``), graded by :func:`grade`."""
    return {"claim": claim, "effect": float(effect), "se": float(se), "n": int(n), "direction": direction,
            "verdict": grade(effect, se, direction, n_se), "basis": basis}


def weakest(grades) -> str:
    """The weakest of several grades (a claim made of parts holds only as well as its weakest part)."""
    grades = list(grades)
    if not grades:
        raise ValueError("weakest() needs at least one grade")
    bad = [g for g in grades if g not in GRADES]
    if bad:
        raise ValueError(f"unknown grade(s) {bad}; expected one of {GRADES}")
    return max(grades, key=GRADES.index)


def combined(claim: str, parts: list[dict]) -> dict:
    """A claim made of parts: graded as the weakest part; the effect and SE shown are the weakest part's."""
    worst = max(parts, key=lambda p: GRADES.index(p["verdict"]))
    return {**worst, "claim": claim, "verdict": weakest(p["verdict"] for p in parts),
            "basis": f"weakest of {len(parts)} parts ({worst['basis']})"}


def effect_text(effect: float, se: float, scale: float = 100.0, unit: str = "pts") -> str:
    """'+1.03 ± 0.24 pts (4.3 SE)': an effect and its standard error, in points by default."""
    if not math.isfinite(float(effect)):
        return "n/a"
    z = abs(effect) / se if se > 0 else math.inf
    zs = "" if math.isnan(se) else f", {z:.1f} SE" if math.isfinite(z) else ", SE 0"
    sd = "?" if math.isnan(se) else f"{scale * se:.2f}"
    return f"{scale * effect:+.2f} ± {sd} {unit}{zs}"


def verdict_line(v: dict, scale: float = 100.0, unit: str = "pts") -> str:
    """The Markdown line of a graded claim: '**VERDICT**: claim (effect ± SE, n seeds, basis).'"""
    one = " (one seed: no noise estimate)" if v["n"] < 2 else ""
    return (f"**{v['verdict']}**: {v['claim']} ({effect_text(v['effect'], v['se'], scale, unit)}; "
            f"{v['n']} seeds, {v['basis']}; claimed {'> 0' if v['direction'] == 'greater' else '< 0'}){one}.")
