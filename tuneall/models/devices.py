"""Building a model on the ``meta`` device (no memory, no compute) to count its parameters and FLOPs or check its
shapes, with the CPU as the fallback: a factory that computes with tensors while building (``int(torch.tensor(
input_shape).prod())``: ``.item()`` has no value on meta) or uses an op meta lacks is valid user code. Meta is an
optimisation, not a contract; only the CPU's error is the factory's."""

from __future__ import annotations

from typing import Callable, TypeVar

import torch

T = TypeVar("T")


def meta_or_cpu(fn: Callable[[], T]) -> T:
    """``fn()`` with ``meta`` as the default device; if that raises anything, ``fn()`` again on the CPU (whose
    errors propagate)."""
    try:
        with torch.device("meta"):
            return fn()
    except Exception:  # noqa: BLE001 - any failure on meta is retried where it counts
        pass
    with torch.device("cpu"):
        return fn()


__all__ = ["meta_or_cpu"]
