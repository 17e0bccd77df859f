"""Evaluations another budget needs below a stored run's last step: replayed from states kept on a fixed grid.

A record continues exactly only when every evaluation the longer run makes up to the stored step was made
(:meth:`tuneall.store.records.Record.continues_to`). Within one run the horizons see to it; across runs they cannot:
a search at 3C after one at C reads member 0 at T(4, 3C) = 3/4 T(1, C), a step the first run trained through but
never evaluated (a sweep's smaller budgets the same). Two things make those evaluations cheap and exact:

- the anytime curve is evaluated at powers of two (:func:`tuneall.training.trial.curve_steps`), the same steps
  whatever the budget, so only the trials' own T(k, C) are budget-dependent;
- a member keeps its whole state (weights, optimiser, batch sampler, RNG, loss tail) at up to :data:`CHECKPOINTS`
  steps of the budget-independent grid {4, 5, 6, 7} x 2^i (ratio at most 1.25) below its last step, within
  :data:`tuneall.store.records.STATE_MAX_BYTES` together, each packed into one tensor of its ``torch.save`` bytes
  (:func:`pack`: loading a record stays as fast as without them; unpacked only to replay). An evaluation at step s that a record lacks is then made by
  running the member from the last grid state below s to s (at most s / 5 steps), every such
  *replay* a continuation and so bit for bit the uninterrupted run (:mod:`tuneall.training.member`); the longer run
  then continues from the stored last state as before. Replays whose ranges overlap are one replay.

A replay trains steps the store had trained once already: they are counted as trained and, separately, as
``member_steps_replayed`` (``benchmarks/shared_store.py`` measures them). Without a grid state below s (older records,
or s below the kept range), the replay starts from step 0, never costing more than training the member afresh.
"""

from __future__ import annotations

CHECKPOINTS = 12  # grid states kept per member: 3 octaves below its last step
GRID = (4, 5, 6, 7)  # x 2^i: the budget-independent steps at which states are kept


def _grid(upto: float) -> list[int]:
    """The grid {4, 5, 6, 7} x 2^i up to the first octave past ``upto`` (ascending): every step the functions below
    choose from."""
    return sorted(m << e for e in range(max(1, int(upto).bit_length())) for m in GRID)


def grid_steps(below: int, n: int = CHECKPOINTS) -> tuple[int, ...]:
    """The ``n`` largest steps of the grid {4, 5, 6, 7} x 2^i below ``below`` (ascending)."""
    return tuple([s for s in _grid(below) if s < below][-n:]) if n > 0 else ()


def grid_in(lo: float, hi: float) -> tuple[int, ...]:
    """The steps of the grid {4, 5, 6, 7} x 2^i in [lo, hi] (ascending)."""
    return tuple(s for s in _grid(hi) if lo <= s <= hi)


def nearest_grid_step(steps: int) -> int:
    """The grid step nearest ``steps`` in ratio (the smaller on a tie; ``steps`` itself below the grid's 4)."""
    import math

    if steps < GRID[0]:
        return int(steps)
    return min(_grid(steps), key=lambda g: (abs(math.log(g / steps)), g))


def keep(checkpoints: dict, last: int, state_bytes, budget: int) -> dict:
    """The states worth keeping: grid steps below ``last``, the :data:`CHECKPOINTS` largest, within ``budget`` bytes
    together (the largest steps first: they save the most)."""
    out, used = {}, 0
    for s in sorted((s for s in checkpoints if s < last), reverse=True)[:CHECKPOINTS]:
        size = state_bytes(checkpoints[s])
        if used + size > budget:
            break
        out[s], used = checkpoints[s], used + size
    return dict(sorted(out.items()))


def pack(state: dict):
    """A member state as one uint8 tensor (its ``torch.save`` bytes): a record holding a dozen states then loads as
    fast as one holding none (``torch.load(weights_only=True)`` unpickles tensor by tensor; a state is only read
    back for a replay)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def unpack(blob) -> dict:
    """The member state :func:`pack` packed (read with ``weights_only``: no code runs)."""
    import io

    import torch

    return torch.load(io.BytesIO(blob.numpy().tobytes()), map_location="cpu", weights_only=True)


def plan(rec, steps: int, evals) -> list[tuple[int, int, tuple[int, ...]]]:
    """The replays that give ``rec`` every evaluation a ``steps``-step run evaluated at ``evals`` makes at or below
    the record's continuable step (its last state, or for a request inside the run its ok_through): (start, end,
    evaluations), start a grid state's step or 0 (from scratch). Empty when nothing is missing or the record cannot
    be continued or replayed (diverged)."""
    if rec is None or rec.diverged:
        return []
    at = int(rec.state["step"]) if rec.state is not None else rec.ok_through
    if rec.state is None and steps > at:
        return []  # nothing continues it: the member is trained afresh anyway
    needed = {s for s in evals if 0 < s < steps} | {steps}  # records.needed_evals (records imports this module)
    missing = sorted(s for s in needed if s <= at and s not in rec.test)
    states = sorted(s for s in rec.checkpoints if s <= rec.ok_through)
    out: list[tuple[int, int, tuple[int, ...]]] = []
    for s in missing:
        start = max((c for c in states if c < s), default=0)
        if out and start <= out[-1][1]:  # continuing the previous replay is as cheap
            out[-1] = (out[-1][0], s, out[-1][2] + (s,))
        else:
            out.append((start, s, (s,)))
    return out


__all__ = ["CHECKPOINTS", "GRID", "grid_steps", "grid_in", "nearest_grid_step", "keep", "pack", "unpack", "plan"]
