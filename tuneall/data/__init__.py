"""Datasets as in-memory CPU tensors, behind a small name registry.

Every dataset is float32 inputs normalised per channel with statistics of its *training* split, int64 labels, no
augmentation. ``dataset_info`` is static so a budget can be planned without the data; ``load_dataset`` reads,
downloads or generates the data and caches it in-process (treat the returned tensors as read-only: they are shared).

Validation. Every loaded dataset holds a validation split carved from its training split (:func:`with_validation`:
``val_fraction`` of the rows, 10 % by default, chosen by a permutation with a fixed seed, so it is the same for every
member, budget and run). Searches and sweeps choose on validation and report test beside it. The normalisation
statistics are those of the training split before the carve (no test input enters them).
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import os
import pathlib
import random
import zlib
from dataclasses import dataclass, replace

import numpy as np
import torch

from tuneall.data import cifar
from tuneall.data.cifar import (  # noqa: F401  (re-exported: the CIFAR names live in tuneall.data.cifar)
    _CIFAR_LAYOUT,
    CIFAR_MD5,
    CIFAR_MEMBER_MD5,
    CIFAR_URLS,
    DOWNLOAD_TIMEOUT_S,
    _one_line,
)
from tuneall.core.errors import ConfigError, DataError
from tuneall.rundir.fsio import atomic_path

log = logging.getLogger(__name__)


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


def dataset_info(name: str, val_fraction: float = DEFAULT_VAL_FRACTION) -> DatasetInfo:
    """Static description of a dataset (with its validation carve); never touches disk or network.

    User data (:mod:`tuneall.data.user`) is described by the name it was registered under, or by its import path
    (``mypkg.data:load``), which loads it once in this process."""
    from tuneall.data import user as user_data

    valid = f"valid datasets: {', '.join(list_datasets())}, an import path (mypkg.data:load) or register_data's names"
    if not isinstance(name, str):
        raise DataError(f"dataset must be a name (str), got {_show(name)}; {valid}")
    user = user_data.lookup(name)
    if user is not None:
        return user.info
    try:
        info = _INFOS[name]
    except KeyError:
        raise DataError(f"unknown dataset {_show(name)}; {valid}") from None
    n_val = val_count(info.n_train, val_fraction)
    return replace(info, n_train=info.n_train - n_val, n_val=n_val)


def val_count(n_full: int, val_fraction: float) -> int:
    """Validation rows carved from ``n_full`` training rows: round(fraction x n), at least 1, leaving at least 1."""
    ok = isinstance(val_fraction, numbers.Real) and not isinstance(val_fraction, bool)
    if not ok or not math.isfinite(val_fraction) or not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction={_show(val_fraction)}: expected a number in (0, 1)")
    if n_full < 2:
        raise DataError(f"the training split has {n_full} row(s): too few to carve a validation split")
    return min(n_full - 1, max(1, round(val_fraction * n_full)))


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


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Where datasets live: ``data_dir``, else $TUNEALL_DATA, else $XDG_CACHE_HOME/tuneall or ~/.cache/tuneall."""
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise ConfigError(f"data_dir={_show(data_dir)}: expected a directory path (str or path-like)")
    if data_dir is not None and str(data_dir) != "":
        return pathlib.Path(data_dir).expanduser()
    if os.environ.get("TUNEALL_DATA"):
        return pathlib.Path(os.environ["TUNEALL_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    base = pathlib.Path(cache) if cache and os.path.isabs(cache) else pathlib.Path.home() / ".cache"
    return base / "tuneall"


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    data_fraction: float = 1.0,
    fraction_seed: int = 0,
    download: bool = True,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> Dataset:
    """Load a dataset (cached in-process) with its validation carve, keeping a seeded ``data_fraction`` of the
    remaining training rows."""
    from tuneall.data import user as user_data

    user = user_data.lookup(name)
    if user is not None:
        return with_fraction(user, data_fraction, fraction_seed)
    dataset_info(name, val_fraction)  # unknown names and bad fractions fail before any option check or disk access
    _check_fraction(data_fraction, fraction_seed)
    if not isinstance(download, (bool, np.bool_)):
        raise ConfigError(f"download={_show(download)}: expected True or False")
    # Only datasets that live on disk depend on the directory; keying the others on None avoids duplicate copies.
    path = resolve_data_dir(data_dir)  # checks data_dir for every dataset: a bad argument is bad wherever it goes
    root = str(path.resolve()) if name in ("cifar10", "cifar100", "mnist1d") else None
    return with_fraction(_load_split(name, root, bool(download), float(val_fraction)), data_fraction, fraction_seed)


def clear_cache() -> None:
    """Forget the in-process dataset cache (tests; freeing memory)."""
    _load_split.cache_clear()


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


def fraction_size(n_full: int, num_classes: int, data_fraction: float) -> int:
    """Training rows :func:`with_fraction` keeps out of ``n_full``."""
    return min(n_full, max(num_classes, round(data_fraction * n_full)))


def check_batch_sizes(rows, dataset: Dataset) -> None:
    """Refuse allocations whose batch is larger than their training data (the sampler would silently train on
    smaller batches than recorded). ``rows``: a table (or records) with ``batch_size`` and ``data_fraction``."""
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    n_full = dataset.x_train.shape[0]
    for r in records:
        bs, frac = r.get("batch_size"), r.get("data_fraction", 1.0)
        if bs is None or bs != bs:  # missing or NaN: the default batch size applies
            continue
        frac = 1.0 if frac is None or frac != frac else float(frac)
        n = fraction_size(n_full, dataset.info.num_classes, frac)
        if int(bs) > n:
            part = "" if frac == 1.0 else f" at data fraction {frac:g}"
            raise DataError(f"batch_size {int(bs)} is larger than the {n} training examples of "
                            f"{dataset.info.name}{part}; use a batch size <= {n}")


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


# ----------------------------------------------------------------------------------------------------------------
# Loading


def _check_fraction(data_fraction: float, fraction_seed: int) -> None:
    ok = isinstance(data_fraction, numbers.Real) and not isinstance(data_fraction, bool)
    if not ok or not math.isfinite(data_fraction) or not 0 < data_fraction <= 1:
        raise ConfigError(f"data_fraction={_show(data_fraction)}: expected a number in (0, 1]")
    if not isinstance(fraction_seed, numbers.Integral) or isinstance(fraction_seed, bool):
        raise ConfigError(f"fraction_seed={_show(fraction_seed)}: expected an int")


@functools.lru_cache(maxsize=8)
def _load_split(name: str, root: str | None, download: bool, val_fraction: float) -> Dataset:
    # Only the split copy is cached (CIFAR's float copy is 600 MB; keeping the unsplit one too would double it).
    return with_validation(_load_full(name, root, download), val_fraction)


def _load_full(name: str, root: str | None, download: bool) -> Dataset:
    if name in _CIFAR_LAYOUT:
        return cifar.load_cifar(name, pathlib.Path(root), download)
    if name == "mnist1d":
        return _load_mnist1d(pathlib.Path(root))
    if name == "digits":
        return _load_digits()
    return make_synthetic(SYNTHETIC_SHAPE, 10, SYNTHETIC_N_TRAIN, SYNTHETIC_N_TEST, seed=0)


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


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()  # bundled with scikit-learn: no download
    x = bunch.images.astype(np.float32)[:, None]  # (N, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, bunch.target, test_size=DIGITS_TEST_SIZE, stratify=bunch.target, random_state=DIGITS_SEED
    )
    return _finish(_INFOS["digits"], x_tr, y_tr, x_te, y_te)


def _load_mnist1d(root: pathlib.Path) -> Dataset:
    info = _INFOS["mnist1d"]
    path = root / "mnist1d-default-seed42.npz"
    arrays = None
    if path.is_file():
        try:
            with np.load(path) as f:
                arrays = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
        except (OSError, ValueError, KeyError, EOFError, zlib.error) as exc:
            # Only a cache of data we can regenerate: rebuild rather than fail.
            log.warning("ignoring unreadable mnist1d cache %s (%s); regenerating", path, exc)
    if arrays is None:
        arrays = _generate_mnist1d()
        _save_npz_atomic(path, arrays)
    return _finish(info, arrays["x"][:, None], arrays["y"], arrays["x_test"][:, None], arrays["y_test"])


def _generate_mnist1d() -> dict[str, np.ndarray]:
    # The package's own generator with its default args (5000 samples, 80/20, length 40, seed 42), never its
    # get_dataset(), which downloads. Measured 2.2-2.5 s, plus ~1.2 s to import mnist1d (it pulls in matplotlib),
    # hence the .npz cache (loads in ~5 ms).
    import mnist1d.data

    # make_dataset seeds the global `random` and numpy RNGs; restore them so loading data has no side effects.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {k: np.ascontiguousarray(d[k]) for k in ("x", "y", "x_test", "y_test")}


def _save_npz_atomic(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # concurrent trials never read a half-written cache
            np.savez(f, **arrays)
    except OSError as exc:
        # A read-only data dir only costs regeneration next time; the data itself is fine.
        log.warning("could not cache mnist1d at %s (%s)", path, exc)


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


