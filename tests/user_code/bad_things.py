"""Model factories and data loaders that are wrong in one way each (tests/test_bad_input.py refuses them)."""

import numpy as np
import torch
from torch import nn


def good_mlp(width, depth, input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), max(1, int(16 * width))), nn.ReLU(),
                         nn.Linear(max(1, int(16 * width)), num_classes))


def raises(width, depth, input_shape, num_classes):
    raise RuntimeError("my factory is broken")


def not_a_module(width, depth, input_shape, num_classes):
    return "a string"


def wrong_shape(width, depth, input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), num_classes + 1))


def forward_fails(width, depth, input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(3, num_classes))  # ignores the input size


def lazy_ok(width, depth, input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(8), nn.ReLU(), nn.Linear(8, num_classes))


NOT_CALLABLE = 3


def _xy(n=60, d=5, classes=3, seed=0):
    g = np.random.default_rng(seed)
    return g.normal(size=(n, d)).astype(np.float32), (np.arange(n) % classes).astype(np.int64)


def good_data():
    return _xy()


def mismatched():
    x, y = _xy()
    return x, y[:-1]


def float_labels():
    x, y = _xy()
    return x, y.astype(np.float32) + 0.5


def nan_inputs():
    x, y = _xy()
    x[3, 2] = np.nan
    return x, y


def labels_out_of_range():
    x, y = _xy()
    xt, yt = _xy(20, seed=1)
    return {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt + 5, "num_classes": 3}


def empty_test():
    x, y = _xy()
    return x, y, x[:0], y[:0]


def negative_labels():
    x, y = _xy()
    return x, y - 1


def loader_raises():
    raise OSError("disk on fire")


def unknown_key():
    x, y = _xy()
    return {"x_train": x, "y_train": y, "x_tset": x}


def big_tensor_bad():
    x, y = _xy(5000, 50)
    return torch.from_numpy(x), torch.from_numpy(y).float()
