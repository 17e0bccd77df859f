"""Raw inputs -> what a trained member reads.

Built-in datasets are standardised per channel with their training split's statistics (``tuneall.data._finish``);
user data is used as given. The transform is recorded with the data (``Dataset.transform``) and with every saved
ensemble (``ensemble.json``), so a saved ensemble applied to raw inputs (pixels as the dataset ships them) scores
what the search recorded. ``{"kind": "standardize", "mean": [...], "std": [...]}`` (one value per channel) or
``{"kind": "none"}``.
"""

from __future__ import annotations

NONE = {"kind": "none"}


def standardize(mean, std) -> dict:
    """The record of a per-channel standardisation (``mean`` / ``std``: one value per channel)."""
    return {"kind": "standardize", "mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def describe(transform: dict | None) -> str:
    t = transform or NONE
    if t.get("kind") == "standardize":
        return f"standardised per channel ((x - mean) / std, {len(t['mean'])} channel(s))"
    return "used as given"


def as_batch(x, input_shape):
    """``x`` (a torch tensor, numpy array or nested list; one example or a batch) as a float32 batch tensor, and
    whether it was a single example. One line (ValueError) when its shape fits neither."""
    import numpy as np
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    t = t.detach().to("cpu", torch.float32)
    shape = tuple(int(s) for s in input_shape)
    if tuple(t.shape) == shape:
        return t.unsqueeze(0), True
    if tuple(t.shape[1:]) == shape:
        return t, False
    if shape[0] == 1 and len(shape) > 1:  # one channel: the channel axis may be left out
        if tuple(t.shape) == shape[1:]:
            return t.reshape(1, *shape), True
        if tuple(t.shape[1:]) == shape[1:]:
            return t.unsqueeze(1), False
    flat = int(np.prod(shape))
    if t.dim() == 1 and t.numel() == flat:  # one flattened example
        return t.reshape(1, *shape), True
    if t.dim() == 2 and t.shape[1] == flat:  # a batch of flattened examples (e.g. sklearn's digits.data)
        return t.reshape(-1, *shape), False
    raise ValueError(f"inputs of shape {tuple(t.shape)} fit neither one example {shape} nor a batch "
                     f"(N, {', '.join(map(str, shape))})")


def apply(transform: dict | None, x):
    """``x`` (a float32 batch, channel axis 1) with the recorded transform applied."""
    import torch

    t = transform or NONE
    if t.get("kind") != "standardize":
        return x
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean = torch.tensor(t["mean"], dtype=x.dtype).reshape(shape)
    std = torch.tensor(t["std"], dtype=x.dtype).reshape(shape)
    return (x - mean) / std


__all__ = ["NONE", "standardize", "describe", "as_batch", "apply"]
