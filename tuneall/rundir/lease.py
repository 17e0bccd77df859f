"""One driver per URI results directory: a lease object, ``tuneall.lease``, at the URI.

Object stores have no ``flock`` and pyarrow.fs offers no conditional put, so the lock is a lease: a small JSON
object naming its holder (a random id, pid, host, command) and when it expires. A driver takes the directory when
no lease is there, or the one there has expired, or its holder is a process of this host that is no longer alive
(a driver killed with SIGKILL, resumed on the same machine, takes over at once). It writes its lease, waits
``SETTLE_S`` and reads it back: a driver that wrote after it sees another id and gives way (object stores are
read-after-write consistent, so of two drivers the later writer wins and the earlier one sees that). A renewal
thread rewrites the lease every ``RENEW_S`` while the run lasts; release deletes it if it is still ours.

What it costs and what it does not guarantee: two drivers that both read "free" and write within ``SETTLE_S`` of
each other's read-back can both proceed (a true compare-and-swap would need a conditional put); and a holder
unreachable for ``TTL_S`` (network, a frozen VM) loses the lease to another. Clocks of the drivers' machines must
agree to well under ``TTL_S``. The driver's machine also holds the working copy's ``flock`` (:mod:`.lock`), which
is exact between processes of one machine.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

from tuneall.core.errors import ConfigError

LEASE = "tuneall.lease"
TTL_S = 120.0
RENEW_S = 30.0
SETTLE_S = 0.5


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(doc: dict, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    try:
        if float(doc["expires"]) < now:
            return True
        return doc.get("host") == socket.gethostname() and not _alive(int(doc["pid"]))
    except (KeyError, TypeError, ValueError):
        return True  # unreadable: nobody can prove they hold it


def _describe(doc: dict) -> str:
    cmd = " ".join(str(doc.get("command") or "").split())[:80]
    left = max(0, int(float(doc.get("expires", 0)) - time.time()))
    return (f"pid {doc.get('pid')} on host {doc.get('host')}" + (f", running {cmd!r}" if cmd else "")
            + f"; its lease ends in {left} s unless renewed")


def read(mirror) -> dict | None:
    """The lease object at the mirror's URI, or None (none there, or not JSON: treated as free)."""
    try:
        with mirror.fs.open_input_stream(f"{mirror.root}/{LEASE}") as f:
            doc = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        return None
    except OSError as exc:
        if "not found" in str(exc).lower() or "nosuchkey" in str(exc).lower():
            return None
        raise
    return doc if isinstance(doc, dict) else None


def owner(mirror) -> str | None:
    """Who holds the URI directory (a live lease), or None."""
    doc = read(mirror)
    return None if doc is None or _stale(doc) else _describe(doc)


def check_free(mirror, mine: str | None = None) -> None:
    """ConfigError naming the holder unless the URI directory is free (or held by lease id ``mine``)."""
    doc = read(mirror)
    if doc is not None and doc.get("id") != mine and not _stale(doc):
        raise ConfigError(f"results directory {mirror.uri} is in use by another tuneall driver ({_describe(doc)}); "
                          "wait for it or stop it")


class Lease:
    """The lease on one mirror's URI, as :meth:`acquire` / :meth:`release` (see the module docstring)."""

    def __init__(self, mirror):
        self.mirror = mirror
        self.id = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _doc(self) -> dict:
        from tuneall.rundir.lock import _command

        return {"id": self.id, "pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                "expires": time.time() + TTL_S}

    def _write(self) -> None:
        with self.mirror.fs.open_output_stream(f"{self.mirror.root}/{LEASE}") as f:
            f.write(json.dumps(self._doc()).encode())

    def acquire(self) -> Lease:
        check_free(self.mirror)
        self._write()
        time.sleep(SETTLE_S)
        back = read(self.mirror)
        if back is None or back.get("id") != self.id:
            raise ConfigError(f"results directory {self.mirror.uri} was taken by another tuneall driver at the "
                              f"same moment ({_describe(back or {})}); wait for it or stop it")
        self._thread = threading.Thread(target=self._renew, name="tuneall-lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_S):
            try:
                doc = read(self.mirror)
                if doc is not None and doc.get("id") != self.id:
                    print(f"tuneall: warning: another driver took {self.mirror.uri} ({_describe(doc)}); this run's "
                          "writes there may now conflict with it", flush=True)
                    return
                self._write()
            except OSError:
                pass  # unreachable for now: tried again at the next renewal, and the lease lasts TTL_S

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            doc = read(self.mirror)
            if doc is not None and doc.get("id") == self.id:
                self.mirror.fs.delete_file(f"{self.mirror.root}/{LEASE}")
        except OSError:
            pass  # it expires on its own
