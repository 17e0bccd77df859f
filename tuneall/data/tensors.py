"""Datasets as tensors: the loaded :class:`Dataset`, the validation carve, data fractions, normalisation and the
seeded synthetic data."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

import torch

from tuneall.core.errors import ConfigError, DataError
from tuneall.data.registry import (DEFAULT_VAL_FRACTION, SYNTHETIC_N_TEST, SYNTHETIC_N_TRAIN, SYNTHETIC_SIGNAL,
                                   VAL_SEED, DatasetInfo, _show, fraction_size, val_count)

@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors with == is elementwise, not a bool
class Dataset:
    """A loaded dataset; ``x_train`` holds the data_fraction subset, ``info.n_train`` the full split size."""

    info: DatasetInfo
    x_train: torch.Tensor  # float32, normalised
    y_train: torch.Tensor  # int64
    x_test: torch.Tensor
    y_test: torch.Tensor
    data_fraction: float
    x_val: torch.Tensor | None = None  # carved from the training split (with_validation) or the user's own
    y_val: torch.Tensor | None = None
    transform: dict | None = None  # raw inputs -> these tensors (tuneall.data.inputs): a saved ensemble applies it
    source: str | None = None  # user data: the import path that loads it again in a new process, if known


def split_indices(n_full: int, val_fraction: float = DEFAULT_VAL_FRACTION) -> tuple[torch.Tensor, torch.Tensor]:
    """(training rows, validation rows) of a training split of ``n_full`` rows, each in ascending order."""
    n_val = val_count(n_full, val_fraction)
    perm = torch.randperm(n_full, generator=torch.Generator().manual_seed(VAL_SEED))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def with_validation(dataset: Dataset, val_fraction: float = DEFAULT_VAL_FRACTION) -> Dataset:
    """Carve ``val_fraction`` of the training rows into the validation split (fixed seed, rows kept in order);
    a dataset that already has a validation split (the user's own) is returned as it is."""
    if dataset.x_val is not None:
        return dataset
    n_full = dataset.x_train.shape[0]
    train, val = split_indices(n_full, val_fraction)
    n_val = len(val)
    return replace(dataset, x_train=dataset.x_train[train].contiguous(), y_train=dataset.y_train[train].contiguous(),
                   x_val=dataset.x_train[val].contiguous(), y_val=dataset.y_train[val].contiguous(),
                   info=replace(dataset.info, n_train=n_full - n_val, n_val=n_val))


def with_fraction(dataset: Dataset, data_fraction: float, fraction_seed: int = 0) -> Dataset:
    """Keep max(num_classes, round(fraction * n_train)) seeded training rows; the test split is untouched.

    For one seed the subsets are nested (a smaller fraction keeps a prefix of the same permutation), so runs at
    different fractions differ only in the extra data.
    """
    _check_fraction(data_fraction, fraction_seed)
    n_full = dataset.x_train.shape[0]
    n = fraction_size(n_full, dataset.info.num_classes, data_fraction)
    if n == n_full:
        return replace(dataset, data_fraction=float(data_fraction))
    gen = torch.Generator().manual_seed(int(fraction_seed))
    idx = torch.randperm(n_full, generator=gen)[:n].sort().values
    return replace(
        dataset,
        x_train=dataset.x_train[idx].contiguous(),
        y_train=dataset.y_train[idx].contiguous(),
        data_fraction=float(data_fraction),
    )


def check_batch_sizes(rows, dataset: "Dataset | DatasetInfo") -> None:
    """Refuse allocations whose batch is larger than their training data (the sampler would silently train on
    smaller batches than recorded). ``rows``: a table (or records) with ``batch_size`` and ``data_fraction``;
    ``dataset``: the loaded data, or its :class:`DatasetInfo` (before any estimate trains at such a batch size)."""
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    info = getattr(dataset, "info", dataset)
    n_full = dataset.x_train.shape[0] if hasattr(dataset, "x_train") else info.n_train
    for r in records:
        bs, frac = r.get("batch_size"), r.get("data_fraction", 1.0)
        if bs is None or bs != bs:  # missing or NaN: the default batch size applies
            continue
        frac = 1.0 if frac is None or frac != frac else float(frac)
        n = fraction_size(n_full, info.num_classes, frac)
        if int(bs) > n:
            part = "" if frac == 1.0 else f" at data fraction {frac:g}"
            raise DataError(f"batch_size {int(bs)} is larger than the {n} training examples of "
                            f"{info.name}{part}; use a batch size <= {n}")


def _check_fraction(data_fraction: float, fraction_seed: int) -> None:
    ok = isinstance(data_fraction, numbers.Real) and not isinstance(data_fraction, bool)
    if not ok or not math.isfinite(data_fraction) or not 0 < data_fraction <= 1:
        raise ConfigError(f"data_fraction={_show(data_fraction)}: expected a number in (0, 1]")
    if not isinstance(fraction_seed, numbers.Integral) or isinstance(fraction_seed, bool):
        raise ConfigError(f"fraction_seed={_show(fraction_seed)}: expected an int")


def _finish(info: DatasetInfo, x_train, y_train, x_test, y_test) -> Dataset:
    """Convert to contiguous float32/int64 CPU tensors and normalise per channel with training statistics."""
    x_train = torch.as_tensor(x_train, dtype=torch.float32).contiguous()
    x_test = torch.as_tensor(x_test, dtype=torch.float32).contiguous()
    dims = [0] + list(range(2, x_train.dim()))  # every axis except the channel one
    var, mean = torch.var_mean(x_train, dim=dims, correction=0, keepdim=True)
    std = var.sqrt().clamp_min(1e-8)  # a constant channel would otherwise divide by zero
    x_train.sub_(mean).div_(std)  # in place: CIFAR's float copy is already 600 MB
    x_test.sub_(mean).div_(std)
    y_train = torch.as_tensor(y_train, dtype=torch.int64).contiguous()
    y_test = torch.as_tensor(y_test, dtype=torch.int64).contiguous()
    info = replace(info, n_train=int(x_train.shape[0]), n_test=int(x_test.shape[0]))
    from tuneall.data.inputs import standardize

    return Dataset(info, x_train, y_train, x_test, y_test, 1.0,
                   transform=standardize(mean.flatten().tolist(), std.flatten().tolist()))


def make_synthetic(
    input_shape: tuple[int, ...] = (3, 32, 32),
    num_classes: int = 10,
    n_train: int = SYNTHETIC_N_TRAIN,
    n_test: int = SYNTHETIC_N_TEST,
    seed: int = 0,
    *,
    signal: float = SYNTHETIC_SIGNAL,
) -> Dataset:
    """Seeded learnable data of any shape: x = signal * prototype[y] + N(0, 1), one random prototype per class.

    The teacher is class-conditional rather than a random linear map of x because a linear teacher over all pixels
    is position-dependent and cnn3's global average pooling cannot learn it (measured: chance accuracy).
    """
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if len(shape) < 1 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ConfigError(f"input_shape={_show(input_shape)}: expected positive ints (features,), (C, L) or "
                          "(C, H, W)")
    for field, value, low in (("num_classes", num_classes, 2), ("n_train", n_train, 1), ("n_test", n_test, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{field}={_show(value)}: expected an int >= {low}")
    if not isinstance(signal, (int, float)) or not math.isfinite(signal) or signal <= 0:
        raise ConfigError(f"signal={_show(signal)}: expected a finite number > 0")
    gen = torch.Generator().manual_seed(int(seed))
    prototypes = torch.randn(num_classes, *shape, generator=gen)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Balanced labels (as balanced as n allows) so small splits still contain every class.
        y = (torch.arange(n) % num_classes)[torch.randperm(n, generator=gen)]
        return signal * prototypes[y] + torch.randn(n, *shape, generator=gen), y

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    info = DatasetInfo("synthetic", shape, num_classes, n_train, n_test)
    return _finish(info, x_train, y_train, x_test, y_test)


__all__ = ["Dataset", "split_indices", "with_validation", "with_fraction", "check_batch_sizes", "make_synthetic"]
