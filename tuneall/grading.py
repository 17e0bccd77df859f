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
