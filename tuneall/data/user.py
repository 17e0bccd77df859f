"""Data from user code: tensors, a ``torch.utils.data.Dataset``, or a callable returning them.

Accepted forms (arrays may be torch tensors or numpy arrays):

- a dict with ``x_train, y_train`` and optionally ``x_val, y_val``, ``x_test, y_test``, ``num_classes``;
- a tuple ``(x_train, y_train)``, ``(x_train, y_train, x_test, y_test)`` or
  ``(x_train, y_train, x_val, y_val, x_test, y_test)``;
- a ``torch.utils.data.Dataset`` of ``(x, y)`` items (the training data);
- a callable with no arguments returning any of these; from the CLI ``--data mypkg.data:load`` or ``file.py:load``.

Classification with integer labels 0..C-1 is the contract. A split that is not given is carved from the training
data with a fixed seed (test: ``test_fraction``, 20 %; validation: ``val_fraction``, 10 % of what is left). Inputs
are used as given (float32, no normalisation: standardise them yourself). Bad data is refused with one
:class:`~tuneall.core.errors.DataError` line naming the problem and the split, never the values.

The driver loads the data once; Ray's object store ships it to the trials like a built-in dataset.
"""

from __future__ import annotations

from dataclasses import replace

from tuneall.core.errors import DataError
from tuneall.core.imports import import_object, is_import_path
from tuneall.data.registry import DEFAULT_VAL_FRACTION, DatasetInfo, list_datasets, val_count

DEFAULT_TEST_FRACTION = 0.2
TEST_SEED = 20240918
_SPLITS = ("train", "val", "test")
_USER: dict = {}  # name -> tuneall.data.Dataset, in this process


def lookup(name: str):
    """The registered user dataset ``name``, loading an import path the first time; None for other names."""
    if not isinstance(name, str):
        return None
    if name in _USER:
        return _USER[name]
    if is_import_path(name):
        register_data(import_object(name, what="data"), name=name)
        return _USER[name]
    return None


def register_data(data, name: str = "user", *, val_fraction: float | None = None,
                  test_fraction: float = DEFAULT_TEST_FRACTION, num_classes: int | None = None) -> str:
    """Validate ``data`` (any accepted form), register it under ``name`` for this process; returns the name."""
    if not isinstance(name, str) or not name or name in list_datasets():
        raise DataError(f"data: name {name!r} is taken by a built-in dataset or empty; register your data under "
                        "another name")
    _USER[name] = to_dataset(data, name, val_fraction=val_fraction, test_fraction=test_fraction,
                             num_classes=num_classes)
    return name


def _splits(data) -> dict:
    """The accepted forms -> {'x_train': ..., 'y_train': ..., ...} (arrays, or a torch Dataset per split)."""
    import torch

    if isinstance(data, torch.utils.data.Dataset):
        return {"train": data}
    if isinstance(data, dict):
        allowed = {f"{a}_{s}" for a in "xy" for s in _SPLITS} | {"num_classes"}
        unknown = sorted(set(map(str, data)) - allowed)
        if unknown:
            raise DataError(f"data: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
        for s in _SPLITS:
            if (f"x_{s}" in data) != (f"y_{s}" in data):
                raise DataError(f"data: the {s} split needs both x_{s} and y_{s}")
        return dict(data)
    if isinstance(data, (tuple, list)):
        names = {2: ("train",), 4: ("train", "test"), 6: ("train", "val", "test")}.get(len(data))
        if names is None:
            raise DataError(f"data: a tuple of {len(data)} items; expected (x_train, y_train), (x_train, y_train, "
                            "x_test, y_test) or (x_train, y_train, x_val, y_val, x_test, y_test)")
        return {f"{a}_{s}": data[2 * i + j] for i, s in enumerate(names) for j, a in enumerate("xy")}
    if callable(data):
        raise DataError("data: the callable returned another callable; return tensors, a dict or a Dataset")
    raise DataError(f"data: expected tensors (tuple or dict), a torch Dataset or a callable returning them, "
                    f"got {type(data).__name__}")


def _stack(ds, split: str):
    import torch

    try:
        items = [ds[i] for i in range(len(ds))]
        xs = torch.stack([torch.as_tensor(x) for x, _ in items])
        ys = torch.as_tensor([int(y) for _, y in items])
    except (TypeError, ValueError, RuntimeError) as e:
        raise DataError(f"data: the {split} Dataset's items must be (input, integer label) pairs of one shape "
                        f"({type(e).__name__})") from None
    return xs, ys


def _tensor(v, what: str, split: str):
    import numpy as np
    import torch

    if isinstance(v, torch.Tensor):
        return v.detach().cpu()
    if isinstance(v, np.ndarray):
        if v.dtype == object:
            raise DataError(f"data: {what} of the {split} split is an object array; expected numbers")
        return torch.from_numpy(np.ascontiguousarray(v))
    raise DataError(f"data: {what} of the {split} split is a {type(v).__name__}; expected a tensor or numpy array")


def to_dataset(data, name: str = "user", *, val_fraction: float | None = None,
               test_fraction: float = DEFAULT_TEST_FRACTION, num_classes: int | None = None):
    """Any accepted form -> a validated :class:`tuneall.data.Dataset` with train, validation and test splits."""
    import torch

    from tuneall.data.tensors import Dataset, with_validation

    if callable(data) and not isinstance(data, (torch.utils.data.Dataset, torch.Tensor)):
        try:
            data = data()
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001  the user's loader failed: say so in one line
            raise DataError(f"data: the loader {getattr(data, '__qualname__', data)!r} raised {type(e).__name__}: "
                            f"{' '.join(str(e).split())[:200]}") from None
    raw = _splits(data)
    num_classes = raw.pop("num_classes", num_classes)
    arrays = {}
    for s in _SPLITS:
        if s in raw:  # a torch Dataset for this split
            arrays[s] = _stack(raw[s], s)
        elif f"x_{s}" in raw:
            arrays[s] = (_tensor(raw[f"x_{s}"], "x", s), _tensor(raw[f"y_{s}"], "y", s))
    if "train" not in arrays:
        raise DataError("data: no training split (x_train, y_train)")
    for s, (x, y) in arrays.items():
        _check_split(s, x, y)
    shape = tuple(arrays["train"][0].shape[1:])
    for s, (x, _) in arrays.items():
        if tuple(x.shape[1:]) != shape:
            raise DataError(f"data: inputs of the {s} split have shape {tuple(x.shape[1:])} per example, the "
                            f"train split's {shape}")
    top = max(int(y.max()) for _, y in arrays.values())
    if num_classes is None:
        num_classes = top + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise DataError(f"data: num_classes must be an integer >= 2, got {num_classes!r} (labels are 0..C-1)")
    for s, (_, y) in arrays.items():
        if int(y.max()) >= num_classes:
            raise DataError(f"data: labels of the {s} split are out of range (max {int(y.max())}, "
                            f"num_classes {num_classes}; labels are 0..{num_classes - 1})")
    x_train, y_train = arrays["train"]
    if "test" not in arrays:  # carve a test split, then validation from what is left
        n = len(x_train)
        n_test = val_count(n, test_fraction)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(TEST_SEED))
        test, keep = perm[:n_test].sort().values, perm[n_test:].sort().values
        arrays["test"] = (x_train[test], y_train[test])
        x_train, y_train = x_train[keep], y_train[keep]
    f32 = lambda t: t.to(torch.float32).contiguous()  # noqa: E731
    i64 = lambda t: t.to(torch.int64).contiguous()  # noqa: E731
    x_val, y_val = arrays.get("val", (None, None))
    if x_val is not None and val_fraction is not None:
        raise DataError("data: val_fraction given, but the data has its own validation split (x_val, y_val)")
    x_test, y_test = arrays["test"]
    info = DatasetInfo(name, shape, num_classes, len(x_train), len(x_test), len(x_val) if x_val is not None else 0)
    ds = Dataset(info, f32(x_train), i64(y_train), f32(x_test), i64(y_test), 1.0,
                 f32(x_val) if x_val is not None else None, i64(y_val) if y_val is not None else None)
    ds = with_validation(ds, DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction)
    if ds.info.n_train < 1:
        raise DataError("data: the train split is empty after carving validation and test")
    return replace(ds, info=replace(ds.info, name=name))


def _check_split(split: str, x, y) -> None:
    import torch

    if x.dim() < 2:
        raise DataError(f"data: x of the {split} split has shape {tuple(x.shape)}; expected (N, features...)")
    if y.dim() != 1:
        raise DataError(f"data: y of the {split} split has shape {tuple(y.shape)}; expected (N,) class labels")
    if len(x) == 0 or len(y) == 0:
        raise DataError(f"data: the {split} split is empty")
    if len(x) != len(y):
        raise DataError(f"data: the {split} split has {len(x)} inputs but {len(y)} labels")
    if y.dtype == torch.bool or y.dtype.is_floating_point or y.dtype.is_complex:
        raise DataError(f"data: labels of the {split} split have dtype {y.dtype}; integer class labels 0..C-1 "
                        "are required (classification only)")
    if not (x.dtype.is_floating_point or x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32,
                                                      torch.int64)):
        raise DataError(f"data: inputs of the {split} split have dtype {x.dtype}; expected numbers")
    if x.dtype.is_floating_point and not bool(torch.isfinite(x).all()):
        raise DataError(f"data: inputs of the {split} split contain NaN or infinite values")
    if int(y.min()) < 0:
        raise DataError(f"data: labels of the {split} split are out of range (min {int(y.min())}; labels are "
                        "0..C-1)")


__all__ = ["register_data", "to_dataset", "lookup", "DEFAULT_TEST_FRACTION"]
