"""The dataset registry, torch-free: what a planner and the CLI need without loading anything (names, shapes,
split sizes, the validation carve's size)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from tuneall.core.errors import ConfigError, DataError

@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: what a planner needs without loading anything."""

    name: str
    input_shape: tuple[int, ...]  # (C, H, W) for images, (C, L) for 1-D signals; no batch dim
    num_classes: int
    n_train: int  # training rows after the validation carve (before data_fraction)
    n_test: int
    n_val: int = 0  # validation rows carved from the training split

    @property
    def spatial_dims(self) -> int:
        return len(self.input_shape) - 1

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]


# Synthetic defaults: small enough that a test trains a model on it in seconds.
SYNTHETIC_SHAPE = (3, 16, 16)
SYNTHETIC_N_TRAIN, SYNTHETIC_N_TEST = 2048, 512
# Prototype amplitude relative to unit noise. Measured with cnn3 (w=1, 15 epochs, Adam): 0.15 -> 18 %, 0.25 -> 49 %,
# 0.35 -> 84 % test accuracy, so 0.3 leaves room for bigger budgets to win; a linear model gets ~100 % at 0.3.
SYNTHETIC_SIGNAL = 0.3

# 1797 digits, stratified 80/20 split with random_state=0 (sklearn rounds the test share up: 360).
DIGITS_TEST_SIZE, DIGITS_SEED = 0.2, 0

_INFOS = {
    "cifar10": DatasetInfo("cifar10", (3, 32, 32), 10, 50000, 10000),
    "cifar100": DatasetInfo("cifar100", (3, 32, 32), 100, 50000, 10000),
    "digits": DatasetInfo("digits", (1, 8, 8), 10, 1437, 360),
    "mnist1d": DatasetInfo("mnist1d", (1, 40), 10, 4000, 1000),
    "synthetic": DatasetInfo("synthetic", SYNTHETIC_SHAPE, 10, SYNTHETIC_N_TRAIN, SYNTHETIC_N_TEST),
}

DEFAULT_VAL_FRACTION = 0.1  # share of the training split held out for choosing (validation)
VAL_SEED = 20240917  # the carve's permutation seed: fixed, so every member, budget and run sees the same split


def list_datasets() -> list[str]:
    """Names accepted by :func:`dataset_info` and :func:`load_dataset`, sorted."""
    return sorted(_INFOS)


def val_count(n_full: int, val_fraction: float) -> int:
    """Validation rows carved from ``n_full`` training rows: round(fraction x n), at least 1, leaving at least 1."""
    ok = isinstance(val_fraction, numbers.Real) and not isinstance(val_fraction, bool)
    if not ok or not math.isfinite(val_fraction) or not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction={_show(val_fraction)}: expected a number in (0, 1)")
    if n_full < 2:
        raise DataError(f"the training split has {n_full} row(s): too few to carve a validation split")
    return min(n_full - 1, max(1, round(val_fraction * n_full)))


def fraction_size(n_full: int, num_classes: int, data_fraction: float) -> int:
    """Training rows :func:`with_fraction` keeps out of ``n_full``."""
    return min(n_full, max(num_classes, round(data_fraction * n_full)))


def _show(value) -> str:
    """A value for a one-line error: arrays and tensors by type and shape (never their contents), the rest by a
    short repr."""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (str, bytes)):
        try:
            shape = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            pass
        kind = f"{type(value).__module__.split('.')[0]}.{type(value).__name__}"
        dtype = getattr(value, "dtype", None)
        return f"a {kind} of shape {shape}" + (f" and dtype {dtype}" if dtype is not None else "")
    try:
        text = " ".join(repr(value).split())
    except Exception:  # noqa: BLE001  a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


INFOS = _INFOS  # the built-in datasets' static facts (the name other modules use)

__all__ = ["DatasetInfo", "INFOS", "DEFAULT_VAL_FRACTION", "VAL_SEED", "list_datasets", "val_count", "fraction_size"]
