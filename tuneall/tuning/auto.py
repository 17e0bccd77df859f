"""``--searcher auto``: the searcher a search gets from its space and objectives, and the one line that says why.

Successive halving needs a finite grid and judges allocations by predicted validation accuracy
(:mod:`tuneall.tuning.halving`), so it is chosen where the space is a grid (every axis a list) and the search ranks
by validation accuracy; TPE samples continuous axes and other objectives. What this rests on is measured, not
assumed: ``python benchmarks/search_cost.py --held-out`` (cases no constant was tuned on;
``results/benchmarks/search_cost_held_out.json``) compares halving with TPE and random at halving's compute.
"""

from __future__ import annotations

AUTO = "auto"


def choose(space, objectives) -> tuple[str, str]:
    """(searcher, reason) for a search over ``space`` ranking by ``objectives`` ((metric, mode) pairs)."""
    from tuneall.core.config import DEFAULT_OBJECTIVE
    from tuneall.planning.space import AXES, Range, grid

    ranges = sorted({name for fam in space.families for name in AXES if isinstance(space.axis(name, fam), Range)})
    if ranges:
        return "tpe", (f"{', '.join(ranges)} {'is a range' if len(ranges) == 1 else 'are ranges'} in "
                       f"{space.name!r}: halving needs a finite grid, TPE samples continuous axes")
    objs = [tuple(o) for o in objectives]
    if objs and objs != [(DEFAULT_OBJECTIVE, "max")]:
        return "tpe", (f"the search ranks by {', '.join(m for m, _ in objs)}: halving judges validation accuracy "
                       "alone, TPE optimises the objectives given")
    n = len(grid(space))
    return "halving", (f"every axis of {space.name!r} is a list ({n} grid points): halving trains every feasible "
                       "allocation to a ninth of its steps and only the promising ones further (--trials is not used)")


__all__ = ["AUTO", "choose"]
