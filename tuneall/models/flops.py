"""FLOP counts of real modules, measured with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device.

FlopCounterMode counts convolutions and matrix products (2 FLOPs per multiply-add) and not BatchNorm, ReLU or pooling,
which are a few percent of a CNN's work. Counts are cached per architecture and batch size.
"""

from __future__ import annotations

import functools

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from tuneall.models._registry import create_model, on_family_change


def _build(name: str, width: float, depth: int | None, input_shape: tuple[int, ...], num_classes: int):
    return create_model(name, width, depth, input_shape[0], num_classes, spatial_dims=len(input_shape) - 1,
                        input_shape=input_shape)


@functools.lru_cache(maxsize=4096)
def train_flops_per_step(
    name: str, width: float, depth: int | None, input_shape: tuple[int, ...], num_classes: int, batch_size: int
) -> int:
    """Forward + backward FLOPs of one SGD step of one member at ``batch_size`` (seed 002's unit)."""
    with torch.device("meta"):
        model = _build(name, width, depth, input_shape, num_classes)
        x = torch.empty(batch_size, *input_shape)
        y = torch.zeros(batch_size, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return int(counter.get_total_flops())


@functools.lru_cache(maxsize=4096)
def inference_flops(name: str, width: float, depth: int | None, input_shape: tuple[int, ...], num_classes: int) -> int:
    """Forward FLOPs for one input of one member."""
    with torch.device("meta"):
        model = _build(name, width, depth, input_shape, num_classes).eval()
        x = torch.empty(1, *input_shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


on_family_change(train_flops_per_step.cache_clear)
on_family_change(inference_flops.cache_clear)
