"""CIFAR-10 / CIFAR-100 from the official archives: checksums, download, and a restricted unpickler (a pickle can run
code, so only files with the official md5 are unpickled, and only numpy arrays may be built). :mod:`tuneall.data`
re-exports the names and calls :func:`load_cifar`."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pathlib
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
import zlib

import numpy as np
import torch

from tuneall.core.errors import DataError
from tuneall.data.registry import _INFOS
from tuneall.data.tensors import _finish

log = logging.getLogger("tuneall.data")

# CIFAR archives: module-level so tests can point them at small archives or unreachable URLs.
CIFAR_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}
CIFAR_MD5 = {
    "cifar10": "c58f30108f718f92721af3b95e74349a",
    "cifar100": "eb9058c3a382ffc7106e4002c42a8d85",
}
# md5 of each batch file inside the official archives (the values torchvision checks too): an extracted folder is
# only unpickled when every file matches, since a pickle can run code.
CIFAR_MEMBER_MD5 = {
    "cifar10": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    },
    "cifar100": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    },
}
# name -> (archive file, folder inside it, train members, test member, label key)
_CIFAR_LAYOUT = {
    "cifar10": (
        "cifar-10-python.tar.gz",
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        b"labels",
    ),
    "cifar100": ("cifar-100-python.tar.gz", "cifar-100-python", ["train"], "test", b"fine_labels"),
}
DOWNLOAD_TIMEOUT_S = 60


def load_cifar(name: str, root: pathlib.Path, download: bool):
    """The named CIFAR dataset from ``root`` (archive, extracted folder, or downloaded), as a normalised Dataset."""
    archive_name, folder, train_members, test_member, label_key = _CIFAR_LAYOUT[name]
    archive, extracted = root / archive_name, root / folder
    members = train_members + [test_member]
    if archive.is_file():
        _verify_md5(name, archive)
        batches = _read_tar(name, archive, folder, members)
    elif all((extracted / m).is_file() for m in members):
        batches = {m: _read_extracted(name, extracted / m, f"put {archive_name} at {archive}") for m in members}
    else:
        url = CIFAR_URLS[name]
        hint = f"put {archive_name} at {archive} (from {url}), or set --data-dir / TUNEALL_DATA to its directory"
        if not download:
            raise DataError(f"{name}: {archive} not found and download is off; {hint}")
        try:
            _download(url, archive, CIFAR_MD5[name], name)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001  any network/disk failure means "go and fetch it by hand"
            raise DataError(f"{name}: {archive} not found and downloading failed ({_one_line(exc)}); {hint}") from None
        batches = _read_tar(name, archive, folder, members)

    def stack(ms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for m in ms:
            batch = batches[m]
            if isinstance(batch, dict):  # real archives have bytes keys (Python 2 pickles); accept re-pickled str ones
                batch = {k.encode() if isinstance(k, str) else k: v for k, v in batch.items()}
            x = np.asarray(batch.get(b"data")) if isinstance(batch, dict) else None
            y = np.asarray(batch.get(label_key, []), dtype=np.int64) if x is not None else None
            num_classes = _INFOS[name].num_classes
            if x is None or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or y.shape != (len(x),):
                raise DataError(f"{name}: member {m} is not a CIFAR batch (uint8 (N, 3072) data + labels)")
            if len(y) and (y.min() < 0 or y.max() >= num_classes):
                raise DataError(f"{name}: member {m} has labels outside 0..{num_classes - 1}")
            xs.append(x.reshape(-1, 3, 32, 32))  # rows are 1024 R, then G, then B values
            ys.append(y)
        if sum(map(len, xs)) == 0:
            raise DataError(f"{name}: members {', '.join(ms)} hold no images; the data is incomplete")
        return np.concatenate(xs), np.concatenate(ys)

    x_tr, y_tr = stack(train_members)
    x_te, y_te = stack([test_member])
    return _finish(_INFOS[name], torch.from_numpy(x_tr), y_tr, torch.from_numpy(x_te), y_te)


# What a CIFAR batch may reference: numpy array reconstruction and the latin-1 codec Python 3 pickles bytes with at
# protocol 2. Nothing else, so a pickle cannot name os.system, eval, subprocess or any other callable.
def _numpy_pickle_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover  numpy 1.x
        from numpy.core import multiarray, numeric
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                              ("_codecs", "encode"): _latin1_encode}
    for package in ("numpy.core", "numpy._core"):  # numpy 1 and Python 2 pickles say numpy.core; numpy 2 numpy._core
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


def _latin1_encode(text, encoding="latin1", errors="strict"):
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1", errors)


class _SafeUnpickler(pickle.Unpickler):
    """An unpickler that builds only containers, numbers, strings, bytes and numpy arrays."""

    _allowed = _numpy_pickle_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of a CIFAR batch)") from None


# A damaged or hostile pickle fails in many ways; all of them mean "this is not a CIFAR batch".
_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                  OverflowError, MemoryError, RecursionError)


def _read_extracted(name: str, path: pathlib.Path, hint: str) -> object:
    """Unpickle one file of an extracted archive, only if its md5 is the official one (a pickle can run code)."""
    try:
        blob = path.read_bytes()  # hash and unpickle the same bytes: the file cannot change in between
    except OSError as exc:
        raise DataError(f"{name}: cannot read {path} ({_one_line(exc)}); {hint}") from None
    got, expected = hashlib.md5(blob).hexdigest(), CIFAR_MEMBER_MD5[name].get(path.name)
    if got != expected:
        raise DataError(f"{name}: {path} has md5 {got}, expected {expected}: not the official file, so it is not "
                        f"unpickled (a pickle can run code); delete {path.parent} and {hint}")
    try:
        return _SafeUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except _PICKLE_ERRORS as exc:
        raise DataError(f"{name}: cannot read {path} ({_one_line(exc)}); delete {path.parent} and {hint}") from None


def _md5(path: pathlib.Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify_md5(name: str, path: pathlib.Path) -> None:
    got, expected = _md5(path), CIFAR_MD5[name]
    if got != expected:
        raise DataError(
            f"{name}: {path} has md5 {got}, expected {expected}; it is corrupt or incomplete, "
            f"delete it and re-download it from {CIFAR_URLS[name]}"
        )


def _read_tar(name: str, archive: pathlib.Path, folder: str, members: list[str]) -> dict[str, object]:
    # Read the pickles straight out of the archive: no extraction, nothing else written to disk. The md5 check
    # before this is what makes unpickling the archive's contents safe; the restricted unpickler is a second wall.
    out: dict[str, object] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for m in members:
                f = tar.extractfile(f"{folder}/{m}")
                if f is None:
                    raise KeyError(f"{folder}/{m} is not a file")
                with f:
                    out[m] = _SafeUnpickler(f, encoding="bytes").load()
    except (tarfile.TarError, OSError, KeyError, zlib.error, *_PICKLE_ERRORS) as exc:
        raise DataError(
            f"{name}: cannot read {archive} ({_one_line(exc)}); delete it and re-download it from {CIFAR_URLS[name]}"
        ) from None
    return out


def _download(url: str, dest: pathlib.Path, md5: str, name: str) -> None:
    """Fetch ``url`` to ``dest`` via a temp file, renamed into place only once its md5 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", url, dest)
    fd, tmp = tempfile.mkstemp(prefix=dest.name, suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            shutil.copyfileobj(resp, f, 1 << 20)
        got = _md5(pathlib.Path(tmp))
        if got != md5:
            raise DataError(f"{name}: download from {url} has md5 {got}, expected {md5}; try again later")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
