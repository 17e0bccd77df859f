"""An architecture as one value: a model family at a width and depth, and the input it is built for (core).

The model registry builds it, counts its parameters and FLOPs and checks a user factory on it (:mod:`tuneall.models`);
the trial factory, the design classes, training and the checks before a run describe a member's network by it
instead of passing family, width, depth, input shape and class count one by one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    """One network: ``family`` at width multiplier ``width`` and ``depth`` (None: the family's default), for inputs
    of ``input_shape`` per example (no batch axis: (C, H, W) images, (C, L) signals, (F,) features) and
    ``num_classes`` outputs. Hashable: counts are cached per architecture."""

    family: str
    width: float = 1.0
    depth: int | None = None
    input_shape: tuple[int, ...] = (3, 32, 32)
    num_classes: int = 10

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(self.input_shape))  # a list (JSON, a manifest) as a tuple

    @property
    def in_channels(self) -> int:
        """What a built-in family's first layer reads."""
        return self.input_shape[0]

    @property
    def spatial_dims(self) -> int:
        """2 for images, 1 for signals, 0 for feature vectors (built-in families take 1 or 2)."""
        return len(self.input_shape) - 1

    @classmethod
    def for_data(cls, family: str, width: float, depth: int | None, info) -> "Architecture":
        """The architecture for a dataset (``info``: a :class:`tuneall.data.DatasetInfo` or a Dataset's ``info``)."""
        return cls(family, width, depth, tuple(info.input_shape), info.num_classes)


__all__ = ["Architecture"]
