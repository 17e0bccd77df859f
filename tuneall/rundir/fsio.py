"""Files that are either whole or absent: atomic writes, and JSON reads that fail with one line.

A write goes to a temp file in the target's directory, is flushed and fsynced, renamed over the target with
``os.replace`` (atomic on POSIX), and the directory is fsynced so the rename itself survives a power loss. A reader,
or a driver killed mid-write, therefore sees the old file or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tuneall.core.errors import ConfigError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path`` to write by any means; on success it replaces ``path`` atomically.

    The temp name keeps ``path``'s suffix (writers such as ``savefig`` pick the format from it). If the body raises,
    the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    tmp = Path(tmp)
    try:
        os.fchmod(fd, _mode_for(path))  # mkstemp makes 0600; give the file the mode a plain open() would
        os.close(fd)
        fd = -1
        yield tmp
        with open(tmp, "rb+") as f:  # whatever wrote it may not have fsynced
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    from tuneall.rundir import storage

    storage.after_write(path)  # a URI results directory's working copy: the file mirrored to the URI


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically, encoded as ``encoding``, newlines as given."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_frame(df, path: str | os.PathLike, *, index: bool = False, **kwargs) -> None:
    """Write a pandas DataFrame atomically as CSV (``.csv``) or Parquet (``.parquet``/``.pq``), chosen by suffix.

    Extra keyword arguments go to ``DataFrame.to_csv`` / ``to_parquet``.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ValueError(f"atomic_write_frame: {path}: expected a .csv, .parquet or .pq file name")
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            df.to_csv(tmp, index=index, **kwargs)
        else:
            df.to_parquet(tmp, index=index, **kwargs)


def read_json_checked(path: str | os.PathLike, what: str) -> dict:
    """The JSON object in ``path``, or :class:`ConfigError` with one line naming ``what``, the file and the problem.

    ``what`` says what the file is to the user, e.g. ``"search metadata"``. Which keys must be present is the
    caller's business; this only guarantees a dict.
    """
    path = Path(path)
    where = f"{what} {path}"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{where} is a directory, expected a JSON file") from None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read ({exc.strerror or exc})") from None
    if not raw.strip():
        raise ConfigError(f"{where} is empty (cut short by a crash?); restore or delete it")
    if b"\x00" in raw:
        raise ConfigError(f"{where} is binary data, not JSON; restore or delete it")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} is not UTF-8 text (bad byte at offset {exc.start}); restore or delete it") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        cut = " (cut short by a crash?)" if exc.pos >= len(text.rstrip()) else ""
        raise ConfigError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{cut}; "
                          f"restore or delete it") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer too long to convert, absurd nesting
        msg = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ConfigError(f"{where} is not usable JSON ({msg}); restore or delete it") from None
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
                type(None): "null"}.get(type(value), type(value).__name__)
        raise ConfigError(f"{where} holds {kind}, expected a JSON object; restore or delete it")
    return value


def _mode_for(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o7777  # replacing a file keeps its permissions
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux >= 4.7 reports it without changing it (os.umask is process-wide and racy under threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(fd)
