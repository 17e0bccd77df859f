"""Tests for tuneall.data: CIFAR from small archives in the real format, digits, mnist1d, synthetic, data_fraction."""

from __future__ import annotations

import builtins
import hashlib
import io
import math
import pickle
import random
import tarfile

import numpy as np
import pytest
import torch

from tuneall import data
from tuneall.data import cifar
from tuneall.data import (
    Dataset,
    dataset_info,
    list_datasets,
    load_dataset,
    make_synthetic,
    resolve_data_dir,
    with_fraction,
)
from tuneall.core.errors import ConfigError, DataError

UNREACHABLE = "http://127.0.0.1:9/x"  # discard port: connection refused at once, no network needed


# ---------------------------------------------------------------------------------------------------------------
# Small CIFAR archives in the real layout


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _batch(rng, n, num_classes, label_key):
    batch = {
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        label_key: rng.integers(0, num_classes, n).tolist(),
    }
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [-1] * n  # impossible value: reading the wrong key would fail loudly
    return batch


def write_cifar(root, name="cifar10", n=4, n_test=6, seed=0, extracted=False, protocol=None):
    """Write a small archive (or extracted folder) for ``name``; return (path, train batches, test batch)."""
    archive_name, folder, train_members, test_member, label_key = cifar._CIFAR_LAYOUT[name]
    num_classes = dataset_info(name).num_classes
    rng = np.random.default_rng(seed)
    train = [_batch(rng, n, num_classes, label_key) for _ in train_members]
    test = _batch(rng, n_test, num_classes, label_key)
    members = train_members + [test_member]
    blobs = {f"{folder}/{m}": pickle.dumps(b, protocol=protocol) for m, b in zip(members, train + [test])}
    if extracted:
        (root / folder).mkdir(parents=True)
        for member, blob in blobs.items():
            (root / member).write_bytes(blob)
        return root / folder, train, test
    path = root / archive_name
    with tarfile.open(path, "w:gz") as tar:
        for member, blob in blobs.items():
            info = tarfile.TarInfo(member)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path, train, test


def _expected(train, test, label_key=b"labels"):
    """Normalised tensors computed independently in float64 from the raw batches."""
    x_tr = np.concatenate([b[b"data"] for b in train]).reshape(-1, 3, 32, 32).astype(np.float64)
    x_te = test[b"data"].reshape(-1, 3, 32, 32).astype(np.float64)
    mean, std = x_tr.mean(axis=(0, 2, 3), keepdims=True), x_tr.std(axis=(0, 2, 3), keepdims=True)
    y_tr = np.concatenate([b[label_key] for b in train])
    return (x_tr - mean) / std, y_tr, (x_te - mean) / std, np.asarray(test[label_key])


def whole(ds: Dataset, y: bool = False, val_fraction: float = 0.1) -> torch.Tensor:
    """The training split as read, before the validation carve (train and validation rows back in their places)."""
    if ds.x_val is None:
        return ds.y_train if y else ds.x_train
    train, val = data.split_indices(ds.info.n_train + ds.info.n_val, val_fraction)
    a, b = (ds.y_train, ds.y_val) if y else (ds.x_train, ds.x_val)
    out = torch.empty((len(train) + len(val), *a.shape[1:]), dtype=a.dtype)
    out[train], out[val] = a, b
    return out


def test_validation_carve_is_fixed_disjoint_and_a_tenth():
    ds = load_dataset("digits")
    assert (ds.info.n_train, ds.info.n_val, ds.info.n_test) == (1293, 144, 360) == (len(ds.x_train), len(ds.x_val),
                                                                                     len(ds.x_test))
    train, val = data.split_indices(1437)
    assert len(set(train.tolist()) | set(val.tolist())) == 1437 and not set(train.tolist()) & set(val.tolist())
    assert torch.equal(data.split_indices(1437)[1], val)  # the same carve every time (fixed seed)
    other = load_dataset("digits", val_fraction=0.2)
    assert (other.info.n_train, other.info.n_val) == (1150, 287) == (len(other.x_train), len(other.x_val))
    assert torch.equal(whole(other, val_fraction=0.2), whole(ds))
    for bad in (0, 1, -0.1, float("nan"), True):
        with pytest.raises(ConfigError, match="val_fraction"):
            load_dataset("digits", val_fraction=bad)


def test_cifar10_reads_small_archive(tmp_path, monkeypatch):
    path, train, test = write_cifar(tmp_path)
    monkeypatch.setitem(data.CIFAR_MD5, "cifar10", _md5(path))
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert ds.x_train.shape == (18, 3, 32, 32) and ds.x_val.shape == (2, 3, 32, 32)
    assert ds.x_test.shape == (6, 3, 32, 32)
    assert ds.info.input_shape == (3, 32, 32) and ds.info.num_classes == 10
    assert (ds.info.n_train, ds.info.n_val, ds.info.n_test) == (18, 2, 6)  # actual counts of what was read
    x_tr, y_tr, x_te, y_te = _expected(train, test)
    # Same rows, labels and channel layout (1024 R, then G, then B) as the raw pickles, in order.
    np.testing.assert_allclose(whole(ds).numpy(), x_tr, atol=1e-4)
    np.testing.assert_allclose(ds.x_test.numpy(), x_te, atol=1e-4)
    assert whole(ds, y=True).tolist() == y_tr.tolist() and ds.y_test.tolist() == y_te.tolist()
    per_channel = whole(ds).transpose(0, 1).reshape(3, -1)
    assert per_channel.mean(1).abs().max() < 1e-5
    assert (per_channel.std(1, unbiased=False) - 1).abs().max() < 1e-4
    for t, dtype in ((ds.x_train, torch.float32), (ds.x_test, torch.float32), (ds.y_train, torch.int64)):
        assert t.dtype == dtype and t.is_contiguous() and t.device.type == "cpu"


def test_cifar100_reads_fine_labels(tmp_path, monkeypatch):
    path, train, test = write_cifar(tmp_path, "cifar100", n=30, n_test=7)
    monkeypatch.setitem(data.CIFAR_MD5, "cifar100", _md5(path))
    ds = load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert ds.x_train.shape == (27, 3, 32, 32) and ds.x_test.shape == (7, 3, 32, 32)
    assert ds.info.num_classes == 100
    x_tr, y_tr, x_te, y_te = _expected(train, test, b"fine_labels")
    np.testing.assert_allclose(whole(ds).numpy(), x_tr, atol=1e-4)
    assert whole(ds, y=True).tolist() == y_tr.tolist() and ds.y_test.tolist() == y_te.tolist()


def _trust_extracted(monkeypatch, folder, name="cifar10"):
    """Make the files now in ``folder`` the "official" ones (the real table holds the real CIFAR files' md5s)."""
    monkeypatch.setitem(data.CIFAR_MEMBER_MD5, name, {p.name: _md5(p) for p in folder.iterdir()})


def test_cifar_extracted_directory_is_accepted(tmp_path, monkeypatch):
    folder, train, test = write_cifar(tmp_path, extracted=True)
    _trust_extracted(monkeypatch, folder)
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert whole(ds, y=True).tolist() == _expected(train, test)[1].tolist()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_pickle_protocols_pass_the_restricted_unpickler(tmp_path, monkeypatch, protocol):
    # 2 is what the real (Python 2) archives use; 5 stores numpy arrays out of band (numpy's _frombuffer).
    path, train, test = write_cifar(tmp_path, protocol=protocol)
    monkeypatch.setitem(data.CIFAR_MD5, "cifar10", _md5(path))
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    x_tr, y_tr, _, _ = _expected(train, test)
    np.testing.assert_allclose(whole(ds).numpy(), x_tr, atol=1e-4)
    assert whole(ds, y=True).tolist() == y_tr.tolist()


def test_cifar_extracted_files_with_unknown_md5_are_never_unpickled(tmp_path, monkeypatch):
    folder, _, _ = write_cifar(tmp_path, extracted=True)  # member md5s left at the real CIFAR-10 values

    def no_unpickling(*a, **kw):
        raise AssertionError("an unverified file was unpickled")

    for module, attr in ((pickle, "load"), (pickle, "loads"), (cifar, "_SafeUnpickler")):
        monkeypatch.setattr(module, attr, no_unpickling)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    msg = str(err.value)
    assert "\n" not in msg and str(folder / "data_batch_1") in msg and "not the official file" in msg
    assert data.CIFAR_MEMBER_MD5["cifar10"]["data_batch_1"] in msg and "cifar-10-python.tar.gz" in msg


class _Evil:
    """Unpickling this creates ``marker`` (a stand-in for any code a pickle could run)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.mkdir, (self.marker,)


def _evil_blob(marker) -> bytes:
    return pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"x": _Evil(marker)})


@pytest.mark.parametrize("trusted", [False, True], ids=["md5-refuses-it", "restricted-unpickler-refuses-it"])
def test_malicious_pickle_in_extracted_directory_never_runs(tmp_path, monkeypatch, trusted):
    folder, _, _ = write_cifar(tmp_path / "data", extracted=True)
    _trust_extracted(monkeypatch, folder)
    marker = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(_evil_blob(marker))
    if trusted:  # even a file whose md5 matched the table would not get to run code
        _trust_extracted(monkeypatch, folder)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", data_dir=tmp_path / "data", download=False)
    assert not marker.exists()
    msg = str(err.value)
    assert str(folder / "data_batch_3") in msg and "\n" not in msg
    assert ("refusing to load posix.mkdir" in msg) if trusted else ("not the official file" in msg)


def test_malicious_pickle_inside_a_verified_archive_never_runs(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    path = tmp_path / "data" / "cifar-10-python.tar.gz"
    path.parent.mkdir()
    with tarfile.open(path, "w:gz") as tar:
        for m in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            blob = _evil_blob(marker)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{m}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    monkeypatch.setitem(data.CIFAR_MD5, "cifar10", _md5(path))
    with pytest.raises(DataError, match="refusing to load posix.mkdir") as err:
        load_dataset("cifar10", data_dir=path.parent, download=False)
    assert not marker.exists() and str(path) in str(err.value)


def test_stray_pickle_next_to_a_verified_archive_is_ignored(tmp_path, monkeypatch):
    path, train, test = write_cifar(tmp_path)
    monkeypatch.setitem(data.CIFAR_MD5, "cifar10", _md5(path))
    stray = tmp_path / "cifar-10-batches-py"
    stray.mkdir()
    marker = tmp_path / "pwned"
    for m in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (stray / m).write_bytes(_evil_blob(marker))
    _trust_extracted(monkeypatch, stray)  # even "trusted" extracted files lose to the verified archive
    ds = load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert not marker.exists()
    assert whole(ds, y=True).tolist() == _expected(train, test)[1].tolist()


def test_cifar_checksum_mismatch(tmp_path):
    path, _, _ = write_cifar(tmp_path)  # md5 constant left at the real CIFAR-10 value
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", data_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and _md5(path) in msg and data.CIFAR_MD5["cifar10"] in msg
    assert "delete" in msg


@pytest.mark.parametrize("matching_md5", [False, True], ids=["md5-catches-it", "tar-reader-catches-it"])
def test_cifar_truncated_archive(tmp_path, monkeypatch, matching_md5):
    path, _, _ = write_cifar(tmp_path)
    monkeypatch.setitem(data.CIFAR_MD5, "cifar10", _md5(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    if matching_md5:  # a truncated file whose md5 is "right" must still fail cleanly while reading
        monkeypatch.setitem(data.CIFAR_MD5, "cifar10", _md5(path))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_cifar_wrong_batch_contents(tmp_path, monkeypatch):
    path, _, _ = write_cifar(tmp_path, n=0)  # valid tar and pickles, but no training images
    monkeypatch.setitem(data.CIFAR_MD5, "cifar10", _md5(path))
    with pytest.raises(DataError, match="no images"):
        load_dataset("cifar10", data_dir=tmp_path)
    blob = pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})  # wrong row size
    folder, bad = tmp_path / "bad", tmp_path / "bad" / "cifar-10-python.tar.gz"
    folder.mkdir()
    with tarfile.open(bad, "w:gz") as tar:
        for m in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{m}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    monkeypatch.setitem(data.CIFAR_MD5, "cifar10", _md5(bad))
    with pytest.raises(DataError, match="not a CIFAR batch"):
        load_dataset("cifar10", data_dir=folder)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_missing_offline(tmp_path, monkeypatch, name):
    monkeypatch.setitem(data.CIFAR_URLS, name, UNREACHABLE)
    expected_path = tmp_path / cifar._CIFAR_LAYOUT[name][0]
    for download in (True, False):
        with pytest.raises(DataError) as err:
            load_dataset(name, data_dir=tmp_path, download=download)
        msg = str(err.value)
        assert str(expected_path) in msg and "TUNEALL_DATA" in msg and "--data-dir" in msg and "\n" not in msg
        assert UNREACHABLE in msg
    assert list(tmp_path.iterdir()) == []  # the failed download left no partial file behind


def test_cifar_missing_download_function_raises(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(cifar, "_download", boom)
    with pytest.raises(DataError, match="network is unreachable") as err:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(tmp_path / "cifar-10-python.tar.gz") in str(err.value)


def test_cifar_download_verifies_and_renames(tmp_path, monkeypatch):
    (tmp_path / "mirror").mkdir()
    src, _, test = write_cifar(tmp_path / "mirror")
    monkeypatch.setitem(data.CIFAR_URLS, "cifar10", src.as_uri())  # urllib reads file:// like http://
    dest_dir = tmp_path / "data" / "nested"  # created on demand
    monkeypatch.setitem(data.CIFAR_MD5, "cifar10", "0" * 32)
    with pytest.raises(DataError, match="expected 0{32}"):
        load_dataset("cifar10", data_dir=dest_dir)
    assert not dest_dir.exists() or list(dest_dir.iterdir()) == []  # bad download never lands at the final path
    monkeypatch.setitem(data.CIFAR_MD5, "cifar10", _md5(src))
    ds = load_dataset("cifar10", data_dir=dest_dir)
    assert [p.name for p in dest_dir.iterdir()] == ["cifar-10-python.tar.gz"]
    assert ds.y_test.tolist() == list(test[b"labels"])


# ---------------------------------------------------------------------------------------------------------------
# Registry, static info, data dir


def test_list_and_info_static(tmp_path, monkeypatch):
    assert list_datasets() == ["cifar10", "cifar100", "digits", "mnist1d", "synthetic"]
    monkeypatch.setenv("TUNEALL_DATA", str(tmp_path / "nowhere"))

    def no_disk(*args, **kwargs):
        raise AssertionError("dataset_info touched the disk")

    monkeypatch.setattr(builtins, "open", no_disk)
    infos = {name: dataset_info(name) for name in list_datasets()}
    monkeypatch.undo()
    c10 = infos["cifar10"]
    assert (c10.input_shape, c10.num_classes, c10.n_train, c10.n_val, c10.n_test) == ((3, 32, 32), 10, 45000, 5000,
                                                                                      10000)
    assert (c10.spatial_dims, c10.in_channels) == (2, 3)
    assert infos["cifar100"].num_classes == 100
    assert (infos["mnist1d"].spatial_dims, infos["mnist1d"].in_channels) == (1, 1)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("call", [dataset_info, load_dataset])
def test_unknown_dataset(call):
    with pytest.raises(DataError) as err:
        call("imagenet")
    assert "imagenet" in str(err.value) and all(n in str(err.value) for n in list_datasets())


def test_resolve_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEALL_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("TUNEALL_DATA")
    assert resolve_data_dir() == tmp_path / "xdg" / "tuneall"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "tuneall"


# ---------------------------------------------------------------------------------------------------------------
# digits, mnist1d, synthetic


def _check_tensors(ds: Dataset):
    info = ds.info
    assert ds.x_train.shape == (info.n_train, *info.input_shape) and ds.x_test.shape == (info.n_test, *info.input_shape)
    assert ds.y_train.shape == (info.n_train,) and ds.y_test.shape == (info.n_test,)
    for t, dtype in zip((ds.x_train, ds.x_test, ds.y_train, ds.y_test), (torch.float32,) * 2 + (torch.int64,) * 2):
        assert t.dtype == dtype and t.is_contiguous() and t.device.type == "cpu"
    if ds.x_val is not None:  # loaded datasets; make_synthetic's own have no validation carve
        assert ds.x_val.shape == (info.n_val, *info.input_shape) and ds.y_val.shape == (info.n_val,)
    assert set(ds.y_train.unique().tolist()) == set(range(info.num_classes))
    assert abs(whole(ds).mean().item()) < 1e-4 and abs(whole(ds).std().item() - 1) < 1e-3


def test_digits():
    ds = load_dataset("digits")
    assert ds.info == dataset_info("digits") and (ds.info.n_train, ds.info.n_test) == (1293, 360)
    _check_tensors(ds)
    assert torch.bincount(ds.y_test, minlength=10).min() >= 35  # stratified: ~36 per class
    assert load_dataset("digits").x_train is ds.x_train  # in-process cache
    data.clear_cache()
    again = load_dataset("digits")
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.y_test, ds.y_test)


@pytest.fixture(scope="module")
def mnist1d_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mnist1d")


def test_mnist1d_generates_caches_and_leaves_rng_alone(mnist1d_dir):
    random.seed(7)
    np.random.seed(7)
    before = (random.random(), np.random.rand())
    random.seed(7)
    np.random.seed(7)
    ds = load_dataset("mnist1d", data_dir=mnist1d_dir)
    assert (random.random(), np.random.rand()) == before  # the generator's global seeding was undone
    assert ds.info == dataset_info("mnist1d")
    assert ds.x_train.shape == (3600, 1, 40) and ds.x_val.shape == (400, 1, 40) and ds.x_test.shape == (1000, 1, 40)
    _check_tensors(ds)
    assert [p.name for p in mnist1d_dir.iterdir()] == ["mnist1d-default-seed42.npz"]  # no temp file left over
    data.clear_cache()
    cached = load_dataset("mnist1d", data_dir=mnist1d_dir)  # from the .npz this time
    assert torch.equal(cached.x_train, ds.x_train) and torch.equal(cached.y_test, ds.y_test)


def test_mnist1d_deterministic_and_corrupt_cache_regenerates(mnist1d_dir, tmp_path):
    reference = load_dataset("mnist1d", data_dir=mnist1d_dir)
    (tmp_path / "mnist1d-default-seed42.npz").write_bytes(b"not an npz")
    fresh = load_dataset("mnist1d", data_dir=tmp_path)  # regenerates from scratch (~3 s)
    assert torch.equal(fresh.x_train, reference.x_train) and torch.equal(fresh.y_train, reference.y_train)
    assert torch.equal(fresh.x_test, reference.x_test)


def _nearest_centroid_accuracy(ds: Dataset) -> float:
    x_tr, x_te = ds.x_train.flatten(1), ds.x_test.flatten(1)
    centroids = torch.stack([x_tr[ds.y_train == c].mean(0) for c in range(ds.info.num_classes)])
    return (torch.cdist(x_te, centroids).argmin(1) == ds.y_test).float().mean().item()


def test_synthetic_registry_entry():
    ds = load_dataset("synthetic")
    assert ds.info == dataset_info("synthetic") and ds.info.input_shape == (3, 16, 16)
    _check_tensors(ds)
    assert _nearest_centroid_accuracy(ds) > 0.5  # chance is 0.1


def test_make_synthetic_deterministic_and_learnable():
    a = make_synthetic((2, 50), num_classes=4, n_train=400, n_test=100, seed=3)
    b = make_synthetic((2, 50), 4, 400, 100, 3)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    c = make_synthetic((2, 50), 4, 400, 100, seed=4)
    assert not torch.equal(a.x_train, c.x_train)
    assert a.info.input_shape == (2, 50) and a.info.spatial_dims == 1
    _check_tensors(a)
    assert torch.bincount(a.y_train).tolist() == [100] * 4  # balanced labels
    assert _nearest_centroid_accuracy(a) > 0.6  # chance is 0.25
    assert make_synthetic(n_train=16, n_test=8).x_train.shape == (16, 3, 32, 32)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"input_shape": ()}, "input_shape"),
        ({"input_shape": (3, 0, 4)}, "input_shape"),
        ({"num_classes": 1}, "num_classes"),
        ({"n_train": 0}, "n_train"),
        ({"signal": -1.0}, "signal"),
    ],
)
def test_make_synthetic_bad_args(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        make_synthetic(**kwargs)


# ---------------------------------------------------------------------------------------------------------------
# data_fraction


def test_data_fraction_subset():
    full = load_dataset("digits")
    part = load_dataset("digits", data_fraction=0.1, fraction_seed=1)
    assert part.x_train.shape[0] == round(0.1 * 1293) == 129 and part.data_fraction == 0.1
    assert part.x_val is full.x_val  # the validation split is untouched by the data fraction
    assert part.info == full.info  # info keeps the full split size
    assert part.x_test is full.x_test  # test split untouched
    assert part.x_train.is_contiguous() and part.y_train.dtype == torch.int64
    same = load_dataset("digits", data_fraction=0.1, fraction_seed=1)
    other = load_dataset("digits", data_fraction=0.1, fraction_seed=2)
    assert torch.equal(part.x_train, same.x_train) and not torch.equal(part.x_train, other.x_train)
    # The rows are real training rows, and a bigger fraction with the same seed contains the smaller one.
    bigger = load_dataset("digits", data_fraction=0.3, fraction_seed=1)
    rows = {tuple(r) for r in bigger.x_train.flatten(1).tolist()}
    assert all(tuple(r) in rows for r in part.x_train.flatten(1).tolist())
    assert load_dataset("digits", data_fraction=1e-6).x_train.shape[0] == 10  # at least num_classes
    assert load_dataset("digits", data_fraction=1).x_train is full.x_train


def test_with_fraction_on_make_synthetic():
    ds = with_fraction(make_synthetic((1, 8), 3, 100, 10), 0.25, fraction_seed=5)
    assert ds.x_train.shape == (25, 1, 8) and ds.data_fraction == 0.25


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, math.nan, math.inf, "0.5", True, None])
def test_bad_data_fraction(bad):
    with pytest.raises(ConfigError, match="data_fraction") as err:
        load_dataset("digits", data_fraction=bad)
    assert "(0, 1]" in str(err.value)


def test_bad_fraction_seed():
    with pytest.raises(ConfigError, match="fraction_seed"):
        load_dataset("digits", data_fraction=0.5, fraction_seed=1.5)


# ---------------------------------------------------------------------------------------------------------------
# One-line errors that never dump data


BIG_TENSOR = torch.arange(100000).reshape(1000, 100)
BIG_ARRAY = np.arange(5000.0)


@pytest.mark.parametrize("name, shown", [
    (BIG_TENSOR, "a torch.Tensor of shape (1000, 100) and dtype torch.int64"),
    (BIG_ARRAY, "a numpy.ndarray of shape (5000,) and dtype float64"),
    (list(range(10000)), "[0, 1, 2,"),
    (None, "None"),
    ("x" * 5000, "'xxx"),
])
@pytest.mark.parametrize("call", [dataset_info, load_dataset])
def test_unknown_dataset_of_any_type_is_one_short_line(call, name, shown):
    with pytest.raises(DataError) as err:
        call(name)
    msg = str(err.value)
    assert shown in msg and "\n" not in msg and len(msg) < 250, msg
    assert "valid datasets: cifar10, cifar100, digits, mnist1d, synthetic" in msg


@pytest.mark.parametrize("kwargs, words", [
    ({"data_fraction": BIG_TENSOR}, "data_fraction=a torch.Tensor of shape (1000, 100)"),
    ({"data_fraction": torch.tensor(0.5)}, "data_fraction=a torch.Tensor of shape ()"),
    ({"data_fraction": 0.5, "fraction_seed": BIG_ARRAY}, "fraction_seed=a numpy.ndarray of shape (5000,)"),
    ({"download": BIG_TENSOR}, "download=a torch.Tensor of shape (1000, 100)"),
    ({"download": "yes"}, "download='yes': expected True or False"),
    ({"data_dir": BIG_ARRAY}, "data_dir=a numpy.ndarray of shape (5000,)"),
])
def test_bad_load_options_are_one_short_line(kwargs, words):
    with pytest.raises(ConfigError) as err:
        load_dataset("digits", **kwargs)
    msg = str(err.value)
    assert words in msg and "\n" not in msg and len(msg) < 200, msg


@pytest.mark.parametrize("kwargs, words", [
    ({"input_shape": BIG_TENSOR}, "input_shape=a torch.Tensor of shape (1000, 100)"),
    ({"input_shape": 3}, "input_shape=3"),
    ({"num_classes": BIG_ARRAY}, "num_classes=a numpy.ndarray of shape (5000,)"),
    ({"signal": BIG_TENSOR.float()}, "signal=a torch.Tensor of shape (1000, 100) and dtype torch.float32"),
])
def test_make_synthetic_bad_args_are_one_short_line(kwargs, words):
    with pytest.raises(ConfigError) as err:
        make_synthetic(**kwargs)
    msg = str(err.value)
    assert words in msg and "\n" not in msg and len(msg) < 200, msg
