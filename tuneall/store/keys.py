"""What a member key holds besides the allocation: fingerprints of the model factory's code and of the data.

A record answers a request only if its stored key equals the requested key (:mod:`tuneall.store.records`), so the
key must change whenever a member's numbers could: a user's model file edited between two searches (ReLU to Tanh at
the same parameter count), other data under the same name, a record written by another tuneall format. The driver
computes the fingerprints once per run (:func:`run_ids`: hashing the data's tensors is the costly part) and carries
them to the trials in the run's reuse settings; a trial process never fingerprints the shipped copies itself (a
by-value function unpickled on a worker no longer knows its source).

- a built-in family: its builder module's source (``tuneall/models/cnn.py``, say);
- a user family: its module's source as it was executed (the file's bytes read once at import) and the factory's
  name, or the cloudpickle of the factory by value where the source does not show everything the code computes
  (a closure);
- the data: the tensors of every split (:func:`tuneall.store.records.data_fingerprint`).
"""

from __future__ import annotations

import sys

_MODEL_IDS: dict[tuple, str] = {}


def family_fingerprint(name: str) -> str:
    """A digest of the code that builds family ``name``'s networks (cached per factory object)."""
    from tuneall.core.imports import code_fingerprint, module_source
    from tuneall.models import get_family

    fam = get_family(name)
    ident = (name, id(fam.builder), fam.user)
    if ident not in _MODEL_IDS:
        if fam.user:
            _MODEL_IDS[ident] = code_fingerprint(fam.builder)
        else:
            import hashlib

            src = module_source(fam.builder)
            _MODEL_IDS[ident] = hashlib.sha256(src[1] if src else fam.factory_name.encode()).hexdigest()[:32]
    return _MODEL_IDS[ident]


def run_ids(data, families) -> dict:
    """The run's fingerprints, computed once in the driver: {"data": ..., "models": {family: ...}}."""
    from tuneall.store.records import data_fingerprint

    return {"data": data_fingerprint(data), "models": {f: family_fingerprint(f) for f in sorted(set(families))}}


def model_id(ids: dict | None, family: str) -> str:
    """Family ``family``'s fingerprint as the driver computed it, else (a caller without the run's ids, in the
    driver's own process) computed here."""
    got = ((ids or {}).get("models") or {}).get(family)
    return got if got else family_fingerprint(family)


def data_id(ids: dict | None, data) -> str:
    from tuneall.store.records import data_fingerprint

    return (ids or {}).get("data") or data_fingerprint(data)


def rejected_line(n: int) -> str | None:
    """The one line a run prints when the store refused records (None when it refused none)."""
    if not n:
        return None
    return (f"tuneall: warning: member store: {n} record(s) did not match the member they were asked for "
            "(swapped, damaged, or written for another model, data or tuneall format); those members were trained "
            "again and their records replaced")


def warn_rejected(rows) -> None:
    """Print :func:`rejected_line` for the ``store_records_rejected`` counts of ``rows`` (trial metrics)."""
    n = sum(int((r or {}).get("store_records_rejected", 0) or 0) for r in rows)
    line = rejected_line(n)
    if line:
        print(line, file=sys.stderr, flush=True)


__all__ = ["family_fingerprint", "run_ids", "model_id", "data_id", "rejected_line", "warn_rejected"]
