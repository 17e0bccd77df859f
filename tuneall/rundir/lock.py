"""One tuneall process per results directory: an OS-level ``flock`` on ``tuneall.lock`` inside it.

The kernel drops the lock when its owner exits however it dies (SIGKILL, OOM, power loss of a local disk), so a
stale lock never needs deleting by hand. The file holds the owner's pid, host and command, only to name the owner in
the error a second process gets; the lock itself is the ``flock``, never the file's existence or contents.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from tuneall.core.errors import ConfigError

LOCK_FILE = "tuneall.lock"


class DirectoryLock:
    """Exclusive use of a results directory, as a context manager (or :meth:`acquire` / :meth:`release`).

    ``with DirectoryLock(out): ...`` raises :class:`ConfigError` at once (it never waits) when another process, or
    another ``DirectoryLock`` in this process, holds the directory. The directory is created if missing. The lock
    file is left in place on release (deleting it would let two processes lock two different files).
    """

    def __init__(self, results_dir: str | os.PathLike):
        self.results_dir = Path(results_dir)
        self.path = self.results_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> DirectoryLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this DirectoryLock")
        try:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot create the lock file {self.path} ({exc.strerror or exc}); "
                              f"check that the results directory is writable") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConfigError(f"results directory {self.results_dir} is in use by another tuneall process "
                                  f"({_describe_owner(self.path)}); wait for it or stop it") from None
            raise ConfigError(f"cannot lock {self.path} ({exc.strerror or exc})") from None
        try:
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                     "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            data = (json.dumps(owner) + "\n").encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        except OSError:
            pass  # the lock is held all the same; only the owner's description is missing
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # a later reader of a held lock never sees a previous owner's pid
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the last descriptor of the open file description drops the flock

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"DirectoryLock({str(self.results_dir)!r}, held={self.held})"


def _command() -> str:
    cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)) or sys.executable
    return cmd if len(cmd) <= 200 else cmd[:197] + "..."


def _describe_owner(path: Path) -> str:
    # The owner writes its description just after taking the lock: a reader racing it may see an empty file.
    for _ in range(5):
        try:
            owner = json.loads(path.read_text(encoding="utf-8"))
            pid, host = int(owner["pid"]), str(owner.get("host") or "?")
            cmd = " ".join(str(owner.get("command") or "").split())[:80]
            return f"pid {pid} on host {host}" + (f", running {cmd!r}" if cmd else "")
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.02)
    return f"owner unknown: {path} names none"
