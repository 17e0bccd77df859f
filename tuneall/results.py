"""The results directory: its file names, its provenance file (``tuneall.json``), its state, and the checks that
guard creating and resuming it. One home for what a directory holds, so that writers and readers agree.

State moves ``running`` -> ``interrupted`` | ``complete`` and is written last, atomically (write, fsync, rename):
a directory that says complete has every table and the summary already on disk.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from tuneall.errors import ConfigError
from tuneall.journal import JOURNAL  # noqa: F401  (a search's finished trials, appended and fsynced)

META = "tuneall.json"  # config, command, versions, git revision, state: every run writes it
SWEEP_META = "sweep.json"  # a sweep's provenance and reuse accounting (marks a sweep directory)
OPTUNA_JOURNAL = "optuna.journal"  # the Optuna study, unless --study-storage names another
OPTUNA_TRIALS = "optuna_trials.csv"
TRIALS = "trials.csv"  # one row per trial and repeat (also trials.parquet)
TRIALS_PARQUET = "trials.parquet"
TRIALS_SUMMARY = "trials_summary.csv"
FRONTIER = "frontier.csv"
SUMMARY = "summary.md"
CELLS = "cells.csv"  # a sweep's cells: one row per allocation, budget, rule, repeat (also cells.parquet)
CELLS_PARQUET = "cells.parquet"
JOBS = "jobs.csv"
PLANNED_CELLS = "planned_cells.csv"

STATES = ("running", "interrupted", "complete")


def results_path(storage_path: str | os.PathLike, name: str) -> Path:
    """``storage_path/name``, refusing names that would write anywhere else."""
    if not isinstance(name, str) or not name.strip() or name in (".", "..") or "/" in name or "\\" in name \
            or "\x00" in name:
        raise ConfigError(f"name must be a plain directory name (no '/', not '.' or '..'), but got {name!r}")
    return Path(storage_path).expanduser().resolve() / name


def kind(results_dir: str | Path) -> str:
    """'search' or 'sweep', by the files the directory holds; ConfigError if it is neither."""
    out = Path(results_dir)
    if not out.is_dir():
        raise ConfigError(f"{out} is not a directory")
    if (out / SWEEP_META).exists():
        return "sweep"
    if (out / META).exists():
        k = read_meta(out).get("kind", "search")
        if k not in ("search", "sweep"):
            raise ConfigError(f"{out / META} is damaged (kind {k!r} is neither search nor sweep)")
        return k
    if (out / TRIALS).exists() or (out / TRIALS).exists() or (out / JOURNAL).exists():
        return "search"
    raise ConfigError(f"{out} is not a tuneall results directory (no {META})")


def git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(config: dict, argv: list[str] | None, kind: str = "search") -> dict:
    """What makes a results directory reproducible: what it is (search or sweep), resolved config, command,
    versions, git revision."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("tuneall", "torch", "ray", "optuna", "pandas", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"kind": kind, "config": config, "command": argv if argv is not None else sys.argv, "git_revision": git_revision(),
            "versions": versions, "python": platform.python_version(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


def data_facts(info) -> dict:
    """What a report needs to know about the data without loading it (user data cannot be reloaded by name)."""
    return {"name": info.name, "input_shape": list(info.input_shape), "num_classes": info.num_classes,
            "n_train": info.n_train, "n_val": info.n_val, "n_test": info.n_test}


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, doc: dict) -> None:
    """A JSON file that readers trust, written atomically (a kill leaves the old file or the new, never half)."""
    _atomic_write_text(Path(path), json.dumps(doc, indent=1, default=str))


def read_json(path: Path, required: tuple[str, ...] = ()) -> dict:
    """A JSON object from a results directory, or one line saying what is wrong with the file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is damaged ({type(e).__name__}: {str(e).splitlines()[0][:120]}); it cannot "
                          "be trusted") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} is damaged (expected a JSON object, got {type(doc).__name__})")
    missing = [k for k in required if k not in doc]
    if missing:
        raise ConfigError(f"{path} is damaged (missing key {missing[0]!r})")
    return doc


def read_meta(results_dir: str | Path) -> dict:
    """``tuneall.json`` of a directory ({} if it has none; ConfigError if it is damaged)."""
    path = Path(results_dir) / META
    if not path.exists():
        return {}
    doc = read_json(path, required=("config",))
    if not isinstance(doc["config"], dict):
        raise ConfigError(f"{path} is damaged ('config' is not an object)")
    if "state" in doc and doc["state"] not in STATES:
        raise ConfigError(f"{path} is damaged (state {doc['state']!r} is not one of {', '.join(STATES)})")
    return doc


def write_meta(results_dir: str | Path, meta: dict, state: str) -> dict:
    """Record the directory's provenance with its state (atomically); returns what was written."""
    assert state in STATES
    doc = {**meta, "state": state}
    write_json(Path(results_dir) / META, doc)
    return doc


def check_new(out: Path, resume: bool = False) -> None:
    """A new run never overwrites a directory; a resume needs one (named flags: CLI users see these)."""
    if out.exists() and not resume:
        raise ConfigError(f"results directory {out} already exists; resume it (tuneall resume {out}) or choose "
                          "another name")
    if resume and not out.exists():
        raise ConfigError(f"nothing to resume: {out} does not exist")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory")


def _norm(v):
    return json.loads(json.dumps(v, default=str, sort_keys=True))


def _first_difference(a, b, path: str):
    """(dotted path, old, new) of the first difference between two JSON values, looking inside dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        # Fields both record first: a field only one side has is a format difference, a changed value is not.
        for k in sorted(set(a) & set(b)) + sorted(set(a) ^ set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}")
        return None
    return None if a == b else (path, a, b)


def check_same_run(out: Path, old: dict, new: dict, ignore: tuple[str, ...], what: str = "search") -> None:
    """Refuse to resume ``out`` with a config that changes what a trial computes, naming the first field that
    differs (its full path, e.g. ``space.resolved.axes.lr.values``). ``old``/``new`` are JSON-ready configs;
    ``ignore`` names the operational fields (where and how fast it runs) that a resume may change."""
    keys = sorted((set(old) | set(new)) - set(ignore))
    for key in keys:
        diff = _first_difference(_norm(old.get(key)), _norm(new.get(key)), key)
        if diff is not None:
            field, a, b = diff
            raise ConfigError(f"{out} belongs to a different {what} ({field} was {a!r}, now {b!r}); choose another "
                              "name")


__all__ = ["META", "SWEEP_META", "JOURNAL", "OPTUNA_JOURNAL", "OPTUNA_TRIALS", "TRIALS", "TRIALS_PARQUET",
           "TRIALS_SUMMARY", "FRONTIER", "SUMMARY", "CELLS", "CELLS_PARQUET", "JOBS", "PLANNED_CELLS", "STATES",
           "results_path", "kind", "provenance", "data_facts", "write_json", "read_json", "read_meta", "write_meta",
           "check_new",
           "check_same_run"]
