"""Where a run's member store lives: its results directory's own ``member_store/``, or a folder runs share.

``member_store`` (the API's argument, ``--member-store DIR`` / ``--no-member-store`` on the command line): True, the
results directory's own store (the default); False, no store; or a directory that searches and sweeps share. A record
answers a request only when its stored key (everything that changes a member's numbers: architecture, recipe, data
fraction, seed, data and model-code fingerprints, threads, torch, device, CPU) equals the requested one
(:mod:`tuneall.store.records`), so runs of the same data and recipe at other budgets or over other spaces answer and
continue each other's members exactly, and anything else is a miss. The per-member lock files serialise trainers of
concurrent runs (on one disk their ``flock``; through a driver's store service the service holds the same file locks).

Only member records and their lock files are ever written into a shared folder: a run's own files (its journal,
reports, saved members, the store service's ``store_traffic.json``) stay in its results directory. The folder is
recorded in the run's provenance (``tuneall.json`` / ``sweep.json``: ``config.member_store``), so ``tuneall resume``
uses the same store. A path is checked before anything is written (:func:`check_member_store`).
"""

from __future__ import annotations

import os
from pathlib import Path

from tuneall.core.errors import ConfigError

_RESULTS_FILES = ("tuneall.json", "sweep.json")  # a results directory's provenance (tuneall.rundir.results)


def check_member_store(value) -> bool | str:
    """``value`` as a run records it: a bool, or a shared folder as an absolute path; ConfigError (one line) for a
    URI, a file, a folder that cannot be written or created, or a results directory itself."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value).strip():
        raise ConfigError(f"member_store must be True, False or a directory, but got {value!r}")
    text = os.fspath(value)
    if "://" in text:
        raise ConfigError(f"member_store must be a local directory (a disk the driver mounts; trials on other nodes "
                          f"reach it through the driver), but got the URI {text!r}")
    path = Path(text).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"member store {path} is a file, not a directory")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"member store {path} is not writable")
        if any((path / f).exists() for f in _RESULTS_FILES):
            raise ConfigError(f"member store {path} is a results directory; share its store with "
                              f"--member-store {path / 'member_store'}")
        return str(path)
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"member store {path} cannot be created: {parent} is not a writable directory")
    return str(path)


def store_root(results_dir, member_store: bool | str = True) -> Path:
    """The folder holding the run's member records: the shared one, else the results directory's own."""
    from tuneall.store.records import STORE_DIR

    if isinstance(member_store, (str, os.PathLike)) and not isinstance(member_store, bool):
        return Path(member_store)
    return Path(results_dir) / STORE_DIR


def is_shared(member_store) -> bool:
    return isinstance(member_store, (str, os.PathLike)) and not isinstance(member_store, bool)


def describe(member_store) -> str:
    """The announce line's words for the store."""
    if is_shared(member_store):
        return f", member store {member_store} (shared)"
    return ", member store on" if member_store else ""


__all__ = ["check_member_store", "store_root", "is_shared", "describe"]
