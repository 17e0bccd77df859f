"""FLOP counts of real modules, measured with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device
(on the CPU where a factory cannot build there: :mod:`tuneall.models.devices`).

FlopCounterMode counts convolutions and matrix products (2 FLOPs per multiply-add) and not BatchNorm, ReLU or pooling,
which are a few percent of a CNN's work. Counts are cached per architecture and batch size.
"""

from __future__ import annotations

import functools

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from tuneall.core.architecture import Architecture
from tuneall.models._registry import create_model, on_family_change
from tuneall.models.devices import meta_or_cpu


@functools.lru_cache(maxsize=4096)
def train_flops_per_step(arch: Architecture, batch_size: int) -> int:
    """Forward + backward FLOPs of one SGD step of one member at ``batch_size`` (seed 002's unit)."""
    def count() -> int:
        model = create_model(arch)
        x = torch.empty(batch_size, *arch.input_shape)
        y = torch.zeros(batch_size, dtype=torch.long)
        with FlopCounterMode(display=False) as counter:
            F.cross_entropy(model(x), y).backward()
        return int(counter.get_total_flops())

    return meta_or_cpu(count)


@functools.lru_cache(maxsize=4096)
def inference_flops(arch: Architecture) -> int:
    """Forward FLOPs for one input of one member."""
    def count() -> int:
        model = create_model(arch).eval()
        x = torch.empty(1, *arch.input_shape)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        return int(counter.get_total_flops())

    return meta_or_cpu(count)


on_family_change(train_flops_per_step.cache_clear)
on_family_change(inference_flops.cache_clear)
