"""FLOP counts of real modules, measured with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device
(on the CPU where a factory cannot build there: :mod:`tuneall.models.devices`).

FlopCounterMode counts convolutions and matrix products (2 FLOPs per multiply-add) and not BatchNorm, ReLU or pooling,
which are a few percent of a CNN's work. Counts are cached per architecture and batch size.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from tuneall.core.architecture import Architecture
from tuneall.models._registry import create_model, on_family_change
from tuneall.models.devices import meta_or_cpu


# Counts per architecture (and batch size): counted once per process, or handed over by the driver (preload_flops),
# because counting is not free in a fresh process: FlopCounterMode imports torch._dynamo (2-4 s here).
_TRAIN: dict[tuple[Architecture, int], int] = {}
_INFERENCE: dict[Architecture, int] = {}


def train_flops_per_step(arch: Architecture, batch_size: int) -> int:
    """Forward + backward FLOPs of one SGD step of one member at ``batch_size`` (seed 002's unit)."""
    def count() -> int:
        model = create_model(arch)
        x = torch.empty(batch_size, *arch.input_shape)
        y = torch.zeros(batch_size, dtype=torch.long)
        with FlopCounterMode(display=False) as counter:
            F.cross_entropy(model(x), y).backward()
        return int(counter.get_total_flops())

    key = (arch, int(batch_size))
    if key not in _TRAIN:
        _TRAIN[key] = meta_or_cpu(count)
    return _TRAIN[key]


def inference_flops(arch: Architecture) -> int:
    """Forward FLOPs for one input of one member."""
    def count() -> int:
        model = create_model(arch).eval()
        x = torch.empty(1, *arch.input_shape)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        return int(counter.get_total_flops())

    if arch not in _INFERENCE:
        _INFERENCE[arch] = meta_or_cpu(count)
    return _INFERENCE[arch]


def flop_table() -> tuple[tuple, tuple]:
    """Every count this process has made, for :func:`preload_flops` in a trial process (the driver plans every
    feasible point before its trials start, so a trial plans its own with the driver's numbers)."""
    return tuple(_TRAIN.items()), tuple(_INFERENCE.items())


def preload_flops(table) -> None:
    """Take the counts of :func:`flop_table` (from the driver) as this process's own. Call it after the user's
    families are registered: registering a family forgets every count."""
    if table:
        _TRAIN.update(table[0])
        _INFERENCE.update(table[1])


def _forget() -> None:
    _TRAIN.clear()
    _INFERENCE.clear()


on_family_change(_forget)
