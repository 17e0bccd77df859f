"""The results directory: its file names, its provenance file (``tuneall.json``), its state, and the checks that
guard creating and resuming it. One home for what a directory holds, so that writers and readers agree.

State moves ``running`` -> ``interrupted`` | ``complete`` and is written last, atomically (write, fsync, rename):
a directory that says complete has every table and the summary already on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from tuneall.core.errors import ConfigError
from tuneall.core.hardware import cpu_fingerprint
from tuneall.rundir import storage
from tuneall.rundir.fsio import atomic_write_text, read_json_checked
from tuneall.rundir.lock import LOCK_FILE as LOCK_NAME
from tuneall.rundir.journal import JOURNAL  # noqa: F401  (a search's finished trials, appended and fsynced)

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
    if storage.is_remote(storage_path):  # s3://, gs://, ...: the driver's working copy of it (tuneall.rundir.storage)
        return storage.working_copy(str(storage_path), name)
    return Path(storage.local_path(storage_path)).expanduser().resolve() / name


def resolve_dir(results_dir: str | os.PathLike, skip: tuple[str, ...] = ()) -> Path:
    """A results directory given by path or URI (``tuneall resume/report``, ``load_ensemble``): its path, for a URI
    its working copy, pulled from the URI (refused in one line if the URI cannot be used). ``skip``: folders a
    reader does not need (then only read, the lease is not checked)."""
    if not storage.is_remote(results_dir):
        try:
            return Path(storage.local_path(results_dir)).expanduser().resolve()
        except (RuntimeError, OSError) as e:  # a symlink loop, a path the OS refuses
            raise ConfigError(f"{results_dir} is a symbolic link that leads nowhere (a loop or a missing target)"
                              if Path(results_dir).is_symlink() else f"{results_dir} cannot be read ({e})") from None
    base, name = storage.parent(str(results_dir))
    check_storage(base)
    out = results_path(base, name)
    if not storage.exists(out):
        raise ConfigError(f"{results_dir} does not exist (no results directory at that URI)")
    storage.refresh(out, check=not skip, skip=skip)
    return out


def kind(results_dir: str | Path) -> str:
    """'search' or 'sweep', by the files the directory holds; ConfigError if it is neither."""
    out = Path(results_dir)
    if out.is_symlink() and not out.exists():
        raise ConfigError(f"{out} is a symbolic link that leads nowhere (a loop or a missing target)")
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
    if (out / "train.json").exists():
        raise ConfigError(f"{out} is a `tuneall train` directory: its results are in train.json, its members are "
                          "read by tuneall.load_ensemble; report and resume take a search's or sweep's directory")
    if only_lock(out):
        raise ConfigError(f"{out} was stopped before it recorded its settings (it holds only {LOCK_NAME}): there is "
                          "nothing to resume or report; run the same command again (it reuses the directory)")
    raise ConfigError(f"{out} is not a tuneall results directory (no {META})")


def only_lock(out: Path) -> bool:
    """Whether ``out`` is a directory holding nothing but a lock file: a run killed (SIGKILL) between taking the
    directory and writing its provenance. A new run may adopt it."""
    try:
        return out.is_dir() and {p.name for p in out.iterdir()} == {LOCK_NAME}
    except OSError:
        return False


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
            "versions": versions, "python": platform.python_version(), "cpu": cpu_fingerprint(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


def data_facts(info) -> dict:
    """What a report needs to know about the data without loading it (user data cannot be reloaded by name)."""
    return {"name": info.name, "input_shape": list(info.input_shape), "num_classes": info.num_classes,
            "n_train": info.n_train, "n_val": info.n_val, "n_test": info.n_test}


def write_json(path: Path, doc: dict) -> None:
    """A JSON file that readers trust, written atomically (a kill leaves the old file or the new, never half)."""
    atomic_write_text(Path(path), json.dumps(doc, indent=1, default=str))


def read_json(path: Path, required: tuple[str, ...] = ()) -> dict:
    """A JSON object from a results directory, or one line saying what is wrong with the file."""
    path = Path(path)
    doc = read_json_checked(path, "results file")
    missing = [k for k in required if k not in doc]
    if missing:
        raise ConfigError(f"results file {path} is damaged (missing key {missing[0]!r}); restore it or start again")
    return doc


_NUMBER = (int, float)
# The fields of tuneall.json that readers use, with the JSON types they must have where present ("config" must be).
_META_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "kind": ((str,), "a string"), "command": ((list, type(None)), "an array"), "resumes": ((list,), "an array"),
    "state": ((str,), "a string"), "config": ((dict,), "an object"), "config.budget": ((dict,), "an object"),
    "config.budget.value": (_NUMBER, "a number"), "config.budget.unit": ((str,), "a string"),
    "config.budget.min_steps": ((int,), "an integer"), "config.dataset": ((str, type(None)), "a string"),
    "config.space": ((dict,), "an object"), "config.space.name": ((str,), "a string"),
    "config.space.yaml": ((str, type(None)), "a string"), "config.seeds": ((int,), "an integer"),
    "config.seed": ((int,), "an integer"), "config.searcher": ((str,), "a string"),
    "config.trials": ((int,), "an integer"), "config.objectives": ((list,), "an array"),
    "config.resources": ((dict,), "an object"), "config.budgets": ((list,), "an array"),
    "trials_finished": ((int,), "an integer"),
}


def _meta_problem(doc: dict) -> str | None:
    for dotted, (types, expected) in _META_TYPES.items():
        node, found = doc, True
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                found = False
                break
            node = node[part]
        if not found:
            if dotted == "config":
                return "missing key 'config'"
            continue
        # JSON has no bool/int distinction problem in Python: a bool is not an acceptable number here.
        if isinstance(node, bool) or not isinstance(node, types):
            kind = type(node).__name__ if not isinstance(node, bool) else "bool"
            return f"{dotted} is {kind} {str(node)[:40]!r}, expected {expected}"
    return None


def read_meta(results_dir: str | Path) -> dict:
    """``tuneall.json`` of a directory ({} if it has none; ConfigError if it is damaged: cut short, not an
    object, or a field readers use has the wrong type)."""
    path = Path(results_dir) / META
    if not path.exists():
        return {}
    doc = read_json(path)
    problem = _meta_problem(doc)
    if problem:
        raise ConfigError(f"{path} is damaged ({problem}); restore it or start again with another name")
    if "state" in doc and doc["state"] not in STATES:
        raise ConfigError(f"{path} is damaged (state {doc['state']!r} is not one of {', '.join(STATES)})")
    return doc


def write_meta(results_dir: str | Path, meta: dict, state: str) -> dict:
    """Record the directory's provenance with its state (atomically); returns what was written."""
    assert state in STATES
    doc = {**meta, "state": state}
    write_json(Path(results_dir) / META, doc)
    return doc


def check_storage(storage_path: str | os.PathLike) -> None:
    """Refuse a ``storage_path`` that cannot hold results directories, before anything is created: a file (or a
    file on the way), a kernel file system (/proc, /sys, /dev), or an unwritable directory. A URI: a scheme tuneall
    writes through, a bucket that exists and answers, and a writable staging directory for its working copy."""
    if storage.is_remote(storage_path):
        storage.check_uri(storage_path)
        storage_path = storage.staging_root()
    raw = Path(storage.local_path(storage_path)).expanduser()
    path = raw.resolve()
    for special in ("/proc", "/sys", "/dev"):
        if path == Path(special) or Path(special) in path.parents:
            raise ConfigError(f"storage path {str(raw)!r} is under {special}, a kernel file system; choose a "
                              "directory on a disk")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        what = "is a file" if probe == path else f"lies under {probe}, which is a file"
        raise ConfigError(f"storage path {str(raw)!r} {what}, not a directory; choose a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"storage path {str(raw)!r} is not writable ({probe} refuses writes); choose a directory "
                          "you can write to")


def in_use_by(out: Path) -> str | None:
    """Who holds ``out``'s lock (``"pid 123 on host h, running '...'"``), or None; reads only, creates nothing."""
    import errno
    import fcntl

    from tuneall.rundir.lock import LOCK_FILE, _describe_owner

    path = Path(out) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return _describe_owner(path)
        return None
    finally:
        os.close(fd)  # also drops the shared lock taken by the probe
    return None


def check_not_in_use(out: Path) -> None:
    owner = in_use_by(out) if out.is_dir() else None
    if owner:
        raise ConfigError(f"results directory {out} is in use by another tuneall process ({owner}); wait for it "
                          "or stop it")


def check_new(out: Path, resume: bool = False) -> None:
    """A new run never overwrites a directory; a resume needs one (named flags: CLI users see these). A directory
    another tuneall process holds is refused naming that process."""
    check_not_in_use(out)
    storage.refresh(out)  # a URI's: refused if another driver holds it; the working copy made equal to it
    there = storage.exists(out)
    out_ = storage.display(out)
    if there and not resume and not only_lock(out):  # a killed run's empty directory is adopted
        raise ConfigError(f"results directory {out_} already exists; resume it (tuneall resume {out_}) or choose "
                          "another name")
    if resume and not there:
        raise ConfigError(f"nothing to resume: {out_} does not exist")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory")


@contextlib.contextmanager
def owned(out: Path, existing: bool = False):
    """Hold ``out``'s :class:`~tuneall.lock.DirectoryLock` for the body (one process per results directory).

    Take it after the refusal checks. ``existing``: the run continues or reports a directory that exists (a resume,
    ``tuneall report``). A new run re-checks under the lock that no other run made the directory in
    the meantime; if the body fails before writing anything but the lock file, a directory this call created is
    removed again, so a refused run leaves nothing behind.
    """
    from tuneall.rundir.lock import LOCK_FILE, DirectoryLock

    created = not out.exists()
    lock = DirectoryLock(out).acquire()
    try:
        lease = storage.take(out)  # a URI's lease, and its working copy pulled again under it
    except BaseException:
        lock.release()
        raise
    try:
        if not existing and ((out / META).exists() or (out / SWEEP_META).exists()):
            raise ConfigError(f"results directory {out} already exists; resume it (tuneall resume {out}) or choose "
                              "another name")
        yield lock
    except BaseException:
        if created and {p.name for p in out.iterdir()} <= {LOCK_FILE}:
            with contextlib.suppress(OSError):
                (out / LOCK_FILE).unlink()
                out.rmdir()
        raise
    finally:
        try:
            storage.give_back(out, lease)  # what the body left, mirrored to the URI before the lease goes
        finally:
            lock.release()


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
           "results_path", "resolve_dir", "kind", "provenance", "data_facts", "write_json", "read_json", "read_meta",
           "write_meta",
           "check_new", "check_same_run", "check_storage", "check_not_in_use", "in_use_by", "owned", "warn_other_cpu"]


def warn_other_cpu(results_dir) -> None:
    """One line on stderr when the run was recorded on another CPU model or instruction set (core/hardware.py)."""
    from tuneall.core.hardware import cpu_mismatch

    line = cpu_mismatch(read_meta(Path(results_dir)).get("cpu"))
    if line:
        print(f"tuneall: warning: {line}", file=sys.stderr, flush=True)
