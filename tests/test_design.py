"""Design classes of seed 001: within budget, maximal, and the paper's appendix rows where the rule reproduces them."""

from __future__ import annotations

import dataclasses
import random

import pytest

from tuneall.planning.design_classes import (
    DesignClass,
    depth_equivalent,
    design_classes,
    format_design_classes,
    single_network,
    width_equivalent,
)
from tuneall.core.errors import ConfigError
from tuneall.models import Architecture, get_family, list_models, param_count

SHAPES = [(3, 32, 32), (1, 8, 8), (1, 40)]


def _valid_depths(name: str, up_to: int) -> list[int]:
    fam = get_family(name)
    return [d for d in range(1, up_to + 1) if fam.valid_depth(d)]


def _random_cases(n: int = 30):
    rng = random.Random(1)
    for _ in range(n):
        name = rng.choice(list_models())
        unit = get_family(name).width_unit
        # Widths between about half and 2.5x the family's base width, on its grid.
        width = unit * rng.randint(max(1, round(0.5 / unit)), round(2.5 / unit))
        depth = rng.choice(_valid_depths(name, 60)[1:6])  # not the shallowest, so weq can exist
        shape = rng.choice(SHAPES)
        yield name, width, depth, rng.randint(2, 8), shape, rng.choice([10, 100])


def test_random_cases_respect_budget_and_are_maximal():
    found_deq = found_weq = 0
    for name, width, depth, k, shape, classes in _random_cases():
        arch = Architecture(name, width, depth, shape, classes)

        def p(w, d):
            return param_count(name, w, d, shape[0], classes, len(shape) - 1)

        budget = p(width, depth)
        case = (name, width, depth, k, shape, classes)
        unit = get_family(name).width_unit

        try:
            deq = depth_equivalent(arch, k)
        except ConfigError:
            assert k * p(unit, depth) > budget, case  # raised only when not even one grid step fits
        else:
            found_deq += 1
            assert deq.depth == depth and deq.k == k, case
            assert deq.total_params == k * deq.params_per_member == k * p(deq.width, depth) <= budget, case
            assert abs(deq.width / unit - round(deq.width / unit)) < 1e-9, case  # on the grid
            assert k * p(deq.width + unit, depth) > budget, case  # one step wider would not fit

        try:
            weq = width_equivalent(arch, k)
        except ConfigError:
            assert k * p(width, _valid_depths(name, depth)[0]) > budget, case
        else:
            found_weq += 1
            assert weq.width == width and weq.k == k and weq.depth <= depth, case
            assert get_family(name).valid_depth(weq.depth), case
            assert weq.total_params == k * p(width, weq.depth) <= budget, case
            deeper = next(d for d in range(weq.depth + 1, 1000) if get_family(name).valid_depth(d))
            assert k * p(width, deeper) > budget, case  # the next valid depth would not fit
    # The loop must exercise the success paths, not only the errors.
    assert found_deq >= 15 and found_weq >= 15, (found_deq, found_weq)


# Table C (ResNet, k = 4): (single depth, single width in channels, weq depth, the table's deq width in channels).
TABLE_C_ROWS = [(26, 16, 8, 8), (38, 24, 8, 12), (50, 32, 14, 16), (62, 48, 14, 24)]


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("depth,channels,weq_depth,table_deq", TABLE_C_ROWS)
def test_table_c_resnet(depth, channels, weq_depth, table_deq, num_classes):
    single, deq, weq = design_classes(Architecture("resnet", channels / 16, depth, num_classes=num_classes), 4)
    assert weq.depth == weq_depth
    # The table's deq width w/2 breaks the budget; the strict rule gives one channel less (documented in design.py).
    assert 4 * param_count("resnet", table_deq / 16, depth, 3, num_classes, 2) > single.total_params
    assert deq.width * 16 == table_deq - 1


# Table D (WRN, k = 4): (depth, widen factor, weq depth, deq widen factor); the table's grid is integer widen factors.
@pytest.mark.parametrize("depth,width,weq_depth,deq_width", [(28, 4, 10, 1), (28, 12, 10, 5), (52, 8, 16, 3),
                                                             (58, 4, 16, 1)])
def test_table_d_wrn(depth, width, weq_depth, deq_width):
    _, deq, weq = design_classes(Architecture("wrn", width, depth), 4, width_unit=1)
    assert (deq.width, weq.depth) == (deq_width, weq_depth)


def test_documented_examples():
    single, deq, weq = design_classes(Architecture("wrn", 4, 28), 4)
    assert single.total_params == 5_849_050
    assert (deq.width, deq.params_per_member) == (1.9375, 1_377_649)
    assert (weq.depth, weq.params_per_member) == (10, 1_198_810)
    single, deq, weq = design_classes(Architecture("resnet", 1, 56), 4)
    assert single.total_params == 855_770
    assert (deq.width, deq.total_params) == (0.4375, 660_476)
    assert (weq.depth, weq.total_params) == (14, 701_032)


def test_width_unit_override_for_cnn3():
    # One channel of cnn3's first conv is 1/32 of a width step.
    deq = depth_equivalent(Architecture("cnn3", 1.0, 3), 4, width_unit=1 / 32)
    assert (deq.width * 32).is_integer()
    assert 4 * deq.params_per_member <= 94_986 < 4 * param_count("cnn3", deq.width + 1 / 32, 3, 3, 10, 2)


def test_k_one_gives_back_the_single_network():
    single, deq, weq = design_classes(Architecture("resnet", 1.5, 26), 1)
    assert (deq.width, deq.depth, deq.total_params) == (1.5, 26, single.total_params)
    assert (weq.width, weq.depth, weq.total_params) == (1.5, 26, single.total_params)


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda: depth_equivalent(Architecture("resnet", 1, 20), 10**6),
            r"no depth-equivalent ensemble for resnet \(width=1, depth=20, k=1000000\)",
        ),
        (lambda: width_equivalent(Architecture("resnet", 1, 8), 2), r"no width-equivalent ensemble for resnet \(width=1, depth=8"),
        (lambda: width_equivalent(Architecture("wrn", 2, 10), 3), r"no width-equivalent ensemble for wrn"),
        (lambda: design_classes(Architecture("resnet", 1, 20), 0), r"k must be an integer >= 1, but got k=0"),
        (lambda: design_classes(Architecture("resnet", 1, 20), 2.5), r"k=2.5"),
        (lambda: design_classes(Architecture("resnet", 1, 20), True), r"k=True"),
        (lambda: design_classes(Architecture("resnet", 1, 21), 4), r"depth 21 is not valid"),
        (lambda: design_classes(Architecture("nope", 1, 20), 4), r"unknown model family 'nope'"),
        (lambda: depth_equivalent(Architecture("wrn", 4, 28), 4, width_unit=0), r"width_unit must be"),
    ],
)
def test_errors_are_one_line_config_errors(call, match):
    with pytest.raises(ConfigError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


def test_design_class_is_frozen():
    single = single_network(Architecture("resnet", 1, 20))
    assert single == DesignClass("single", "resnet", 1.0, 20, 1, 272_474, 272_474)
    with pytest.raises(dataclasses.FrozenInstanceError):
        single.k = 2


def test_format_design_classes():
    text = format_design_classes(design_classes(Architecture("resnet", 1, 56), 4))
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].split()[:4] == ["class", "width", "depth", "k"]
    assert "fraction of |S|" in lines[0]
    assert len({len(line) for line in lines}) == 1  # right-aligned columns end together
    assert lines[1].split() == ["single", "1", "56", "1", "855,770", "855,770", "1.0000"]
    assert lines[2].split() == ["deq", "0.4375", "56", "4", "165,119", "660,476", "0.7718"]
    assert lines[3].split() == ["weq", "1", "14", "4", "175,258", "701,032", "0.8192"]


def test_format_without_single_needs_a_budget():
    _, deq, weq = design_classes(Architecture("resnet", 1, 20), 2)
    with pytest.raises(ConfigError, match="budget"):
        format_design_classes([deq, weq])
    assert format_design_classes([deq], budget=2 * deq.total_params).splitlines()[1].endswith("0.5000")
