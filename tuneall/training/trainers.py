"""The Trainer protocol: how a trial's members get trained, and its implementations by name.

A trainer takes a trial plan and its data and returns ``results[repeat][member]`` (:class:`MemberResult`), each
evaluated at ``eval_steps`` and at the plan's steps, with its weights at the plan's steps kept (``weights``) so that
a search can save the chosen ensemble without a global side channel. Implementations: :func:`train_sequential`
(one member after another), :class:`MethodTrainer` ("vectorized" or "auto", :mod:`tuneall.training.vectorized`),
the member store's :class:`tuneall.store.reuse.StoreTrainer` and the runner's parallel members as Ray tasks.
"""

from __future__ import annotations

from typing import Callable, Protocol

from tuneall.core.config import MEMBER_METHODS
from tuneall.training.member import MemberResult, train_member


class Trainer(Protocol):
    """``trainer(plan, data, progress, eval_steps) -> results[repeat][member]``; ``method`` names it for records."""

    method: str

    def __call__(self, plan, data, progress: Callable | None = None,
                 eval_steps: tuple[int, ...] = ()) -> list[list[MemberResult]]: ...


def _sequential(plan, data, progress=None, eval_steps=()) -> list[list[MemberResult]]:
    a = plan.allocation
    out = []
    for r, seeds in enumerate(plan.seeds):
        out.append([])
        for i, seed in enumerate(seeds):
            res = train_member(a.family, a.width, plan.depth, data, plan.steps, seed, plan.train, eval_steps,
                               snapshot_steps=(plan.steps,))
            out[-1].append(res)
            if progress:
                progress(r, i, res)
    return out


class MethodTrainer:
    """The trainer for a member method: "sequential", "vectorized" (a repeat's k members trained together) or "auto"
    (whichever a few timed steps show faster for the plan on this machine). ``amp``: mixed precision (vectorised
    only). ``log``, if given, receives the choice made for each plan under "auto"."""

    def __init__(self, method: str = "sequential", amp: bool = False, log: list | None = None):
        if method not in MEMBER_METHODS:
            raise ValueError(f"unknown member training method {method!r}; valid: {', '.join(MEMBER_METHODS)}")
        self.method, self.amp, self.log = method, amp, log

    def __call__(self, plan, data, progress=None, eval_steps=()) -> list[list[MemberResult]]:
        if self.method == "sequential" and not self.amp:
            return _sequential(plan, data, progress, eval_steps)
        from tuneall.training import vectorized as V

        chosen = self.method
        if chosen == "auto":
            if plan.k > 1 and plan.steps * len(plan.seeds) >= V.MIN_STEPS_TO_PROBE:
                info = V.choose_method(plan.allocation.family, plan.allocation.width, plan.depth, data, plan.k,
                                       plan.train)
            else:  # nothing to vectorise, or too short for the probe to pay
                info = {"method": "sequential", "reason": "k = 1 or too few steps to probe"}
            chosen = info["method"]
            if self.log is not None:
                self.log.append(info)
        if chosen == "vectorized":
            return V.train_vectorized(plan, data, progress, eval_steps, amp=self.amp)
        return _sequential(plan, data, progress, eval_steps)


train_sequential = MethodTrainer("sequential")  # the default trainer


def select_trainer(members: str = "sequential", amp: bool = False) -> Trainer:
    """The trainer for a member method name (see :class:`MethodTrainer`)."""
    return train_sequential if members == "sequential" and not amp else MethodTrainer(members, amp)


make_trainer = MethodTrainer  # the name the benchmarks and tests use: make_trainer("auto", log=log)

__all__ = ["Trainer", "MethodTrainer", "train_sequential", "select_trainer", "make_trainer"]
