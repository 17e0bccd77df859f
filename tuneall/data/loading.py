"""Loading datasets by name: built-in ones read, downloaded or generated and cached in-process, user data through
:mod:`tuneall.data.user`."""

from __future__ import annotations

import functools
import logging
import os
import pathlib
import random
import zlib
from dataclasses import replace

import numpy as np

from tuneall.core.errors import ConfigError, DataError
from tuneall.data import cifar
from tuneall.data import user as user_data
from tuneall.data.cifar import _CIFAR_LAYOUT
from tuneall.data.registry import (DEFAULT_VAL_FRACTION, DIGITS_SEED, DIGITS_TEST_SIZE, SYNTHETIC_N_TEST,
                                   SYNTHETIC_N_TRAIN, SYNTHETIC_SHAPE, _INFOS, DatasetInfo, _show, list_datasets,
                                   val_count)
from tuneall.data.tensors import Dataset, _check_fraction, _finish, make_synthetic, with_fraction, with_validation
from tuneall.rundir.fsio import atomic_path

log = logging.getLogger(__name__)


def dataset_info(name: str, val_fraction: float = DEFAULT_VAL_FRACTION) -> DatasetInfo:
    """Static description of a dataset (with its validation carve); never touches disk or network.

    User data (:mod:`tuneall.data.user`) is described by the name it was registered under, or by its import path
    (``mypkg.data:load``), which loads it once in this process."""
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


__all__ = ["dataset_info", "resolve_data_dir", "load_dataset", "clear_cache"]
