"""Model registry in the style of timm: ``@register_model`` plus one ``create_model``.

A family is a builder ``fn(width, depth, in_channels, num_classes, spatial_dims) -> nn.Module`` with a default depth
and a rule for which depths are valid. Parameter counts always come from the real module (built on the ``meta``
device so that counting a 36M-parameter network allocates nothing).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from tuneall.errors import ConfigError


@dataclass(frozen=True)
class ModelFamily:
    name: str
    builder: Callable[..., nn.Module]
    default_depth: int
    valid_depth: Callable[[int], bool]  # which depths the family can build
    depth_rule: str  # human-readable form of valid_depth, for error messages
    description: str
    # Step of the width grid that design-class searches (deq widths) walk: one channel of the first layer whose
    # channel count scales with width, so every grid width builds integral channel counts without rounding.
    width_unit: float = 1.0


_REGISTRY: dict[str, ModelFamily] = {}


def register_model(
    name: str,
    *,
    default_depth: int,
    valid_depth: Callable[[int], bool] = lambda d: d >= 1,
    depth_rule: str = "depth >= 1",
    description: str = "",
    width_unit: float = 1.0,
):
    """Decorator registering ``fn(width, depth, in_channels, num_classes, spatial_dims)`` as family ``name``."""

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"model family {name!r} is registered twice")
        _REGISTRY[name] = ModelFamily(
            name, fn, default_depth, valid_depth, depth_rule, description or fn.__doc__ or "", width_unit=width_unit
        )
        return fn

    return deco


def list_models() -> list[str]:
    """Names of the registered model families, sorted."""
    return sorted(_REGISTRY)


def get_family(name: str) -> ModelFamily:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model family {name!r}; valid: {', '.join(list_models())}") from None


def check_arch(name: str, width: float, depth: int | None) -> int:
    """Validate (family, width, depth); return the depth to use (the family default when None)."""
    fam = get_family(name)
    if not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise ConfigError(f"width must be a finite number > 0, but got width={width!r}")
    d = fam.default_depth if depth is None else depth
    if not isinstance(d, int) or isinstance(d, bool) or not fam.valid_depth(d):
        raise ConfigError(f"depth {d!r} is not valid for family {name!r} ({fam.depth_rule})")
    return d


def create_model(
    name: str,
    width: float = 1.0,
    depth: int | None = None,
    in_channels: int = 3,
    num_classes: int = 10,
    spatial_dims: int = 2,
) -> nn.Module:
    """Build family ``name`` at width multiplier ``width`` and ``depth`` (family default when None).

    ``spatial_dims`` is 2 for images (N, C, H, W) and 1 for signals (N, C, L).
    """
    d = check_arch(name, width, depth)
    if spatial_dims not in (1, 2):
        raise ConfigError(f"spatial_dims must be 1 or 2, but got {spatial_dims!r}")
    return get_family(name).builder(
        width=float(width), depth=d, in_channels=in_channels, num_classes=num_classes, spatial_dims=spatial_dims
    )


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels x width`` rounded to the nearest integer, at least 1."""
    return max(1, int(round(channels * width)))


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics are buffers, so they are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@functools.lru_cache(maxsize=4096)
def param_count(
    name: str,
    width: float = 1.0,
    depth: int | None = None,
    in_channels: int = 3,
    num_classes: int = 10,
    spatial_dims: int = 2,
) -> int:
    """P for an architecture, counted on the real module built on the meta device (cached)."""
    with torch.device("meta"):
        model = create_model(name, width, depth, in_channels, num_classes, spatial_dims)
    return count_params(model)
