"""Per-example correctness as a short text: what a trial reports so that ties can resample validation examples.

A trial's ensemble is right or wrong on each validation example; the tie set (:mod:`tuneall.reporting.ties`)
resamples seeds *and* examples, so it needs those bits per repeat, not only their mean. They travel in the trial's
per-repeat metrics (``repeats_json``, then the trials table's ``val_correct`` column) as ``"N:hex"``: N examples,
bits packed most significant first (numpy.packbits), hex-encoded: 400 examples take 100 characters.

Torch-free; numpy inside the functions.
"""

from __future__ import annotations

CORRECT_COLUMN = "val_correct"


def encode(bits) -> str:
    """``"N:hex"`` of a sequence of booleans (or 0/1)."""
    import numpy as np

    b = np.asarray(bits, dtype=bool).ravel()
    return f"{b.size}:{np.packbits(b).tobytes().hex()}"


def decode(text: str):
    """The boolean numpy array :func:`encode` wrote; ValueError for anything else."""
    import numpy as np

    try:
        n, hexes = str(text).split(":", 1)
        n = int(n)
        raw = np.frombuffer(bytes.fromhex(hexes), dtype=np.uint8)
    except (ValueError, TypeError):
        raise ValueError(f"not an encoded bit vector: {str(text)[:40]!r}") from None
    if n < 0 or raw.size != (n + 7) // 8:
        raise ValueError(f"bit vector of {raw.size} bytes cannot hold {n} bits")
    return np.unpackbits(raw)[:n].astype(bool)
