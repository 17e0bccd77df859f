"""The grading rule on constructed effects and standard errors."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from tuneall.reporting import grading
from tuneall.reporting.grading import NOT_REPRODUCED, REPRODUCED, WEAK, grade


@pytest.mark.parametrize(
    "effect, se, direction, expected",
    [
        (0.05, 0.01, "greater", REPRODUCED),  # 5 SE
        (0.021, 0.01, "greater", REPRODUCED),  # just beyond 2 SE
        (0.02, 0.01, "greater", WEAK),  # exactly 2 SE: not "more than"
        (0.005, 0.01, "greater", WEAK),  # right sign, within noise
        (-0.05, 0.01, "greater", NOT_REPRODUCED),  # wrong sign, however clear
        (0.0, 0.01, "greater", NOT_REPRODUCED),
        (-0.05, 0.01, "less", REPRODUCED),  # a claim that the effect is negative
        (-0.01, 0.01, "less", WEAK),
        (0.05, 0.01, "less", NOT_REPRODUCED),
        (0.01, 0.0, "greater", REPRODUCED),  # se == 0: any effect in the claimed direction is beyond 2 x 0
        (0.0, 0.0, "greater", NOT_REPRODUCED),
        (-0.01, 0.0, "greater", NOT_REPRODUCED),
        (0.05, math.nan, "greater", WEAK),  # unknown noise: the direction holds, its size cannot be judged
        (0.05, math.inf, "greater", WEAK),
        (math.nan, 0.01, "greater", NOT_REPRODUCED),
        (math.nan, math.nan, "greater", NOT_REPRODUCED),
        (math.inf, 0.01, "greater", NOT_REPRODUCED),  # not a measured effect
    ],
)
def test_grade(effect, se, direction, expected):
    assert grade(effect, se, direction) == expected


def test_n_se_changes_the_line():
    assert grade(0.025, 0.01, n_se=3) == WEAK
    assert grade(0.031, 0.01, n_se=3) == REPRODUCED
    assert grade(0.001, 0.01, n_se=0) == REPRODUCED


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="direction"):
        grade(0.1, 0.01, "up")
    with pytest.raises(ValueError, match="se must be"):
        grade(0.1, -0.01)
    with pytest.raises(ValueError, match="n_se"):
        grade(0.1, 0.01, n_se=math.nan)


def test_module_is_torch_free():
    tree = ast.parse(Path(grading.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert names <= {"math", "__future__"}
