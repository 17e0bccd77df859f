"""Results directories at a storage URI (``s3://``, ``gs://``, ``hdfs://``), as Ray Tune's ``RunConfig(storage_path=)``
takes them; ``file://`` URIs are plain local paths.

tuneall's code works on a local directory, so a URI's results directory has a *working copy* on the driver's disk
(``$TUNEALL_STAGING_DIR``, default ``~/.cache/tuneall/storage/<scheme>/<bucket and path>/<name>``) that is mirrored to
the URI through ``pyarrow.fs``:

- *pull* makes the working copy equal to the URI (before a run is checked, again under the lease, and before a report
  or ``load_ensemble`` reads it): files the URI lacks are deleted locally, changed ones downloaded;
- *push* uploads every local file that changed since it was last pushed or pulled and deletes at the URI what the
  run deleted locally (e.g. the members ``save_members='best'`` drops). The driver pushes after every durable write:
  each atomic write (:mod:`tuneall.rundir.fsio`: state, tables, summary, figures) uploads that file, and each journal
  append pushes the whole directory, the journal last, so a trial's member-store records and weights reach the URI
  before the record that names the trial, and the state written last is uploaded last.

A file reaches an object store whole or not at all: one PUT (a multipart upload is completed, so made visible, only
at its end), which replaces the previous object atomically; elsewhere (HDFS) a temporary name and a rename. Only the
driver talks to the URI: trial processes write the working copy on the driver's machine (or the driver-owned store
service), so the URI needs neither credentials nor locks on the workers. The lock is a lease object
(:mod:`tuneall.rundir.lease`). See docs/design.md, "Storage URIs".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tuneall.core.errors import ConfigError
from tuneall.rundir.mirror import _SKIP, OBJECT_STORES, Mirror

STAGING_ENV = "TUNEALL_STAGING_DIR"
# pyarrow.fs schemes tuneall writes through; the module each needs (present in pyarrow builds that support it).
SCHEMES = {"s3": "pyarrow._s3fs", "gs": "pyarrow._gcsfs", "gcs": "pyarrow._gcsfs", "hdfs": "pyarrow._hdfs",
           "viewfs": "pyarrow._hdfs"}
CHECK_TIMEOUT_S = float(os.environ.get("TUNEALL_STORAGE_CHECK_S") or 30)  # the start's reachability check
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")


def scheme_of(text) -> str | None:
    """The URI scheme of ``text`` (lower case), or None for a plain path."""
    m = _URI.match(str(text)) if isinstance(text, (str, os.PathLike)) else None
    return m.group(1).lower() if m else None


def is_remote(text) -> bool:
    """Whether ``text`` is a URI that is not ``file://`` (its results directory goes through pyarrow.fs)."""
    s = scheme_of(text)
    return s is not None and s != "file"


def local_path(text: str | os.PathLike) -> str:
    """A plain path for ``file://`` URIs (``file:///abs``, ``file://localhost/abs``); other text as given.
    Refuses a scheme tuneall does not write through, in one line."""
    s = scheme_of(text)
    if s is None:
        return str(text)
    if s == "file":
        rest = _URI.match(str(text)).group(2)
        host, _, path = rest.partition("/")
        if host not in ("", "localhost"):
            raise ConfigError(f"storage path {text!r} names host {host!r}: a file:// URI must be local "
                              "(file:///absolute/path)")
        from urllib.parse import unquote

        return "/" + unquote(path.split("?", 1)[0])
    check_scheme(str(text))
    return str(text)


def check_scheme(uri: str) -> None:
    """ConfigError in one line unless pyarrow.fs here can write ``uri``'s scheme."""
    import importlib

    s = scheme_of(uri)
    if s not in SCHEMES:
        raise ConfigError(f"storage path {uri!r}: scheme {s + '://'!r} is not supported; use a local directory, "
                          f"file://, {', '.join(k + '://' for k in SCHEMES)}")
    try:
        importlib.import_module(SCHEMES[s])
    except ImportError:
        raise ConfigError(f"storage path {uri!r}: this pyarrow was built without {s}:// support") from None


def _split(uri: str) -> tuple[str, str, str]:
    """(scheme, path without trailing '/', query) of a URI."""
    scheme, rest = _URI.match(uri).groups()
    rest, _, query = rest.partition("?")
    return scheme.lower(), rest.rstrip("/"), query


def child(uri: str, name: str) -> str:
    """``uri/name``, keeping the URI's query (e.g. ``?endpoint_override=...``) at the end."""
    scheme, path, query = _split(uri)
    return f"{scheme}://{path}/{name}" + (f"?{query}" if query else "")


def parent(uri: str) -> tuple[str, str]:
    """(the parent URI, the last name) of a results directory's URI."""
    scheme, path, query = _split(uri)
    head, _, name = path.rpartition("/")
    if not head or not name:
        raise ConfigError(f"{uri!r} names no results directory (expected {scheme}://bucket/path/NAME)")
    return f"{scheme}://{head}" + (f"?{query}" if query else ""), name


def filesystem(uri: str):
    """(pyarrow FileSystem, path inside it) of ``uri``; ConfigError in one line if pyarrow refuses it."""
    import pyarrow.fs as pafs

    check_scheme(uri)
    try:
        return pafs.FileSystem.from_uri(uri)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"storage path {uri!r} cannot be opened: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split("\n")[0].split()) or type(exc).__name__
    return text[:240]


def check_reachable(uri: str) -> None:
    """Refuse, in one line, a storage URI whose bucket (or root) is missing or unreachable, or whose credentials are
    refused, before anything starts. Reads only. A store that does not answer within ``CHECK_TIMEOUT_S`` (clients
    retry for minutes: GCS for 15) is refused as unreachable; the check's thread is left to its retries."""
    import threading

    fs, path = filesystem(uri)
    outcome: list = []

    def probe():
        try:
            _probe(uri, fs, path)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=probe, name="tuneall-storage-check", daemon=True)
    worker.start()
    worker.join(CHECK_TIMEOUT_S)
    if not outcome:
        raise ConfigError(f"storage path {uri!r} is not reachable: no answer within {CHECK_TIMEOUT_S:g} s (network, "
                          "endpoint or credentials)")
    if outcome[0] is not None:
        raise outcome[0]


def _probe(uri: str, fs, path: str) -> None:
    import pyarrow as pa
    import pyarrow.fs as pafs

    object_store = type(fs).__name__ in OBJECT_STORES
    bucket = path.split("/", 1)[0] if object_store else path
    try:
        info = fs.get_file_info(bucket if object_store else path)
        if object_store and info.type == pafs.FileType.NotFound:
            raise ConfigError(f"storage path {uri!r}: bucket {bucket!r} does not exist (or these credentials cannot "
                              "see it); create it first")
        if info.type == pafs.FileType.File:
            raise ConfigError(f"storage path {uri!r} is a file, not a directory")
        fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))  # a listing needs read permission
    except (OSError, pa.ArrowException) as exc:  # GCS's credential errors are plain ArrowExceptions
        denied = any(w in str(exc) for w in ("ACCESS_DENIED", "AccessDenied", "InvalidAccessKeyId", "403",
                                             "OAuth2", "credentials file"))
        hint = ("; the store refused these credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
                "GOOGLE_APPLICATION_CREDENTIALS)" if denied else "")
        raise ConfigError(f"storage path {uri!r} is not reachable: {_first_line(exc)}{hint}") from None


def check_uri(storage_path) -> None:
    """A storage URI's scheme, bucket and credentials checked (:func:`check_reachable`); a plain path: nothing."""
    if is_remote(storage_path):
        check_scheme(str(storage_path))
        check_reachable(str(storage_path))


def staging_root() -> Path:
    """Where the driver keeps its working copies of URI results directories."""
    return Path(os.environ.get(STAGING_ENV) or Path.home() / ".cache" / "tuneall" / "storage").expanduser()


def _staging_dir(uri: str) -> Path:
    import hashlib

    scheme, path, query = _split(uri)
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    if query:  # the same path at two endpoints is two places
        parts[0] = f"{parts[0]}-{hashlib.sha256(query.encode()).hexdigest()[:8]}"
    return staging_root().resolve().joinpath(scheme, *parts)


_MIRRORS: dict[Path, Mirror] = {}  # working copy -> its mirror, in this (the driver's) process only


def working_copy(storage_uri: str, name: str) -> Path:
    """The working copy of ``storage_uri/name`` on this machine, registered as a mirror of it (no I/O)."""
    check_scheme(storage_uri)
    uri = child(storage_uri, name)
    local = _staging_dir(uri)
    if local not in _MIRRORS or _MIRRORS[local].uri != uri:
        _MIRRORS[local] = Mirror(uri, local, filesystem)
    return local


def mirror_of(path: str | os.PathLike) -> Mirror | None:
    """The mirror whose working copy is ``path`` or holds it, or None (a plain local directory)."""
    if not _MIRRORS:
        return None
    p = Path(path)
    for cand in (p, *p.parents):
        if cand in _MIRRORS:
            return _MIRRORS[cand]
    return None


def display(path: str | os.PathLike) -> str:
    """How a results directory is named to the user: its URI, or its path."""
    m = mirror_of(path)
    return m.uri if m is not None and Path(path) == m.local else str(path)


def ray_storage_path(out: Path) -> str:
    """What Ray Tune's ``RunConfig(storage_path=)`` gets for results directory ``out``: the parent URI or path."""
    m = mirror_of(out)
    return parent(m.uri)[0] if m is not None and m.local == Path(out) else str(Path(out).parent)


def ray_path(out: Path) -> str:
    """``out`` itself as Ray Tune's ``storage_path`` (Ray's own experiments kept inside a results directory)."""
    m = mirror_of(out)
    return m.uri if m is not None and m.local == Path(out) else str(out)


def exists(out: Path) -> bool:
    """Whether results directory ``out`` exists (at its URI, for a mirror)."""
    m = mirror_of(out)
    return _sync(m, m.exists) if m is not None else Path(out).exists()


def refresh(out: Path, check: bool = True, skip: tuple[str, ...] = ()) -> None:
    """Before a run or a report is checked: refuse a URI directory another driver holds (``check``); pull the
    working copy (``skip``: folders not fetched)."""
    m = mirror_of(out)
    if m is None:
        return
    from tuneall.rundir.lease import check_free

    if check:
        _sync(m, check_free, m)
    _sync(m, m.pull, skip)


def take(out: Path):
    """Under the working copy's flock: take the URI directory's lease and pull it again (None: a local directory)."""
    m = mirror_of(out)
    if m is None:
        return None
    from tuneall.rundir.lease import Lease

    lease = _sync(m, Lease(m).acquire)
    try:
        _sync(m, m.pull)
    except BaseException:
        lease.release()
        raise
    return lease


def give_back(out: Path, lease) -> None:
    """Push what the run left in the working copy, then release the lease taken by :func:`take`."""
    if lease is None:
        return
    try:
        _sync(lease.mirror, lease.mirror.push)
    finally:
        lease.release()


def after_write(path: str | os.PathLike) -> None:
    """A durable write to ``path`` finished: mirror it to the URI (a journal append pushes the whole directory)."""
    m = mirror_of(path)
    if m is None or not m.local.is_dir():
        return
    rel = Path(path).relative_to(m.local).as_posix()
    if _SKIP.search(rel):
        return
    from tuneall.core.errors import StorageError

    try:  # the journal pushes everything: what failed before is retried with it
        _sync(m, m.push) if rel == "journal.jsonl" or m.failing else _sync(m, m.push, rel)
    except StorageError as exc:
        # Mid-run (often inside a Ray Tune callback) a failed upload must not kill the search: the working copy
        # has it, the next write retries, and the push when the run ends fails in one line if the URI is still down.
        if not m.failing:
            import sys

            print(f"tuneall: warning: {exc}; kept in the working copy {m.local} and pushed again at the next "
                  "write", file=sys.stderr, flush=True)
        m.failing = True
    else:
        m.failing = False


def push(out: Path) -> None:
    """Mirror the whole working copy of ``out`` to its URI now (a plain directory: nothing to do)."""
    m = mirror_of(out)
    if m is not None:
        _sync(m, m.push)


def _sync(m: Mirror, fn, *args):
    """``fn(*args)``, an I/O error at the URI turned into one line (:class:`StorageError`)."""
    import pyarrow as pa

    try:
        return fn(*args)
    except (OSError, pa.ArrowException) as exc:
        from tuneall.core.errors import StorageError

        raise StorageError(f"storage {m.uri}: {_first_line(exc)}") from None
