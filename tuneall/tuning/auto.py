"""``--searcher auto``: the searcher a search gets from its space, and the one line that says why.

What it rests on is measured, not assumed: ``python benchmarks/search_cost.py --held-out`` (cases no constant was
tuned on, ``results/benchmarks/search_cost_held_out.json``) ran successive halving, TPE and random on grids where the
learning rate, the depth or the data fraction matters, five cases of three search seeds. TPE and random with as many
trials as halving spent budgets chose inside the grid's tie set in 14 and 15 of 15 runs, halving in 15 of 15, in
about 1.5 and 1.8 x their wall time (a rung waits for its slowest architecture): one run apart, which fifteen runs
cannot tell from noise. So auto chooses TPE for a grid too; it chooses halving nowhere until a case shows halving ahead,
and ``--searcher halving`` stays available.
"""

from __future__ import annotations

AUTO = "auto"


def choose(space) -> tuple[str, str]:
    """(searcher, reason) for a search over ``space``."""
    from tuneall.planning.space import AXES, Range

    ranges = sorted({name for fam in space.families for name in AXES if isinstance(space.axis(name, fam), Range)})
    if ranges:
        return "tpe", (f"{', '.join(ranges)} {'is a range' if len(ranges) == 1 else 'are ranges'} in "
                       f"{space.name!r}: TPE samples continuous axes (halving needs a finite grid)")
    return "tpe", (f"every axis of {space.name!r} is a list, and on the held-out grids of benchmarks/search_cost.py "
                   "TPE at halving's compute chose inside the grid's tie set in 14 of 15 runs against halving's 15, "
                   "in about two thirds of its wall time (README, Search cost)")


__all__ = ["AUTO", "choose"]
