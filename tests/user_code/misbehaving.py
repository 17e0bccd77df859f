"""Model factories and data loaders that misbehave (tests/test_misbehaving.py): no trainable parameters, exiting
the interpreter, string data, and a factory that computes with tensors while building (valid on the CPU)."""

import sys

import numpy as np
import torch
from torch import nn


def no_parameters(width, depth, input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Identity(), nn.AdaptiveAvgPool1d(num_classes))


def all_frozen(width, depth, input_shape, num_classes):
    m = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), num_classes))
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def exits(width, depth, input_shape, num_classes):
    sys.exit("bye from the factory")


def exits_zero(width, depth, input_shape, num_classes):
    sys.exit(0)


def computes_with_tensors(width, depth, input_shape, num_classes):
    n = int(torch.tensor(input_shape).prod())  # .item() on the meta device fails: the CPU must be tried
    return nn.Sequential(nn.Flatten(), nn.Linear(n, max(1, int(8 * width))), nn.ReLU(),
                         nn.Linear(max(1, int(8 * width)), num_classes))


def _xy(n=60, d=5, classes=3, seed=0):
    g = np.random.default_rng(seed)
    return g.normal(size=(n, d)).astype(np.float32), (np.arange(n) % classes).astype(np.int64)


def loader_exits():
    sys.exit(3)


def string_inputs():
    x, y = _xy()
    return x.astype(str), y


def string_labels():
    x, y = _xy()
    return x, np.array(["a", "b", "c"] * 20)


def with_own_val():
    x, y = _xy()
    xv, yv = _xy(30, seed=1)
    xt, yt = _xy(30, seed=2)
    return {"x_train": x, "y_train": y, "x_val": xv, "y_val": yv, "x_test": xt, "y_test": yt}
