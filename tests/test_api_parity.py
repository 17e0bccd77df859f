"""The Python API does what the CLI does: plan(widths=..., k=...), make_space exported, and a run called from
Python records that call (not the script's name) and names its folder after the space's axes."""

from __future__ import annotations

import tuneall
from tuneall.core.call import python_call


def test_plan_takes_the_cli_axes():
    feasible, _ = tuneall.plan(budget=3e7, widths=[0.5, 1], k=[1, 2])
    assert sorted(set(feasible["width"])) == [0.5, 1.0] and sorted(set(feasible["k"])) == [1, 2]
    assert len(feasible) == 4


def test_make_space_is_exported_and_names_its_axes():
    sp = tuneall.make_space(widths=[0.5, 1], k=[1, 2, 4])
    assert sp is not None and "make_space" in dir(tuneall)
    assert sp.name == "cnn3-w0.5_1-k1_2_4"  # a results folder says what was searched, not "command-line"


def test_a_python_call_is_recorded_as_called():
    def search(budget, dataset="digits", trials=20, space=None, argv=None):
        return python_call("search", search, locals())

    assert search(3e7, trials=12) == ["tuneall.search(budget=30000000.0, trials=12)"]
    assert search(1e6, space=tuneall.make_space(k=[1, 2])) == \
        ["tuneall.search(budget=1000000.0, space=<SearchSpace 'cnn3-k1_2'>)"]
