"""The driver's store service: the member store, saved weights and journal lookups of a run whose nodes share no disk.

:class:`StoreService` is a threaded Ray actor pinned to the driver's node (:func:`start`). It holds a real
:class:`~tuneall.store.records.MemberStore` over the driver's results directory and answers, for every trial of the
cluster: a member's record (read and written whole; records and states travel as Ray objects, through the object
store), the per-member locks (leases, renewed while held, so a lock whose holder died frees itself after
:data:`LEASE_S`), the files of a trial's saved members (``members/<trial>/``) and any read-only lookup the driver's
disk answers (a repeated point in the journal). Nothing a trial reads or writes besides Ray's result channel touches
the trial's own node's disk.

A trial reaches it through :class:`ServiceStore`, a :class:`~tuneall.store.records.MemberStore` whose ``lock``,
``load`` and ``save`` are calls to the service: :func:`tuneall.store.records.fetch_or_train` and the store trainer
work unchanged, and every decision (what a record answers, merges, key checks) is the same code as on one disk.

The service keeps no record in memory between calls: its memory is the records in flight (one member state at most
:data:`tuneall.store.records.STATE_MAX_BYTES` plus its evaluations, per concurrent call). It counts the bytes it moves
(``stats()``: records read and written, weights files written), which the driver writes to ``store_traffic.json``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from tuneall.store import records as S

LEASE_S = 30.0  # a lock whose holder stopped renewing it (its process died) is free after this long


def _safe(relpath: str) -> Path:
    """A relative path inside the results directory (no absolute path, no '..'): all a trial may name."""
    p = Path(relpath)
    if not p.parts or p.is_absolute() or ".." in p.parts:
        raise ValueError(f"not a path inside the results directory: {relpath!r}")
    return p


class StoreService:
    """The records, locks, saved weights and lookups of one results directory on the driver's disk (see the module
    docstring). Run as a threaded actor (many trials at once): the lock table and counters are guarded by a mutex,
    records are written atomically by the member store."""

    def __init__(self, results_dir: str, lease_s: float = LEASE_S, store: str | None = None):
        self.results_dir = str(results_dir)
        self.store = S.MemberStore(Path(store) if store else Path(results_dir) / S.STORE_DIR)
        self.lease_s = lease_s
        self.mu = threading.Lock()
        self.locks: dict[str, tuple[str, float]] = {}  # key id -> (holder token, lease expiry)
        # key id -> the descriptor holding the member's lock file while a lease is held: another run (another
        # driver's service, or trials on a disk) sharing the store folder waits for it as for any trainer.
        self.files: dict[str, int] = {}
        self.traffic = {"records_read": 0, "record_bytes_read": 0, "records_written": 0, "record_bytes_written": 0,
                        "files_written": 0, "file_bytes_written": 0, "lock_calls": 0, "lookups": 0}

    def _count(self, **add: int) -> None:
        with self.mu:
            for k, v in add.items():
                self.traffic[k] += int(v)

    def _size(self, kid: str) -> int:
        try:
            return self.store.path(kid).stat().st_size
        except OSError:
            return 0

    # -- locks: leases held by a token, renewed by the holder's process ------------------------------------------
    def try_lock(self, kid: str, token: str) -> bool:
        with self.mu:
            self.traffic["lock_calls"] += 1
            now = time.monotonic()
            held = self.locks.get(kid)
            if held is not None and held[0] != token and held[1] > now:
                return False
            if held is None or held[0] != token:  # a new holder (or a lapsed lease): the file lock too
                self._release(kid)
                fd = self._flock(kid)
                if fd is None:
                    return False
                self.files[kid] = fd
            self.locks[kid] = (token, now + self.lease_s)
            return True

    def _flock(self, kid: str) -> int | None:
        """The member's lock file held without waiting (its descriptor), or None where another process holds it."""
        import fcntl

        self.store.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.store.root / f"{kid}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _release(self, kid: str) -> None:
        fd = self.files.pop(kid, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def renew(self, token: str) -> None:
        with self.mu:
            until = time.monotonic() + self.lease_s
            for kid, (t, _) in list(self.locks.items()):
                if t == token:
                    self.locks[kid] = (t, until)

    def unlock(self, kid: str, token: str) -> None:
        with self.mu:
            if self.locks.get(kid, ("",))[0] == token:
                del self.locks[kid]
                self._release(kid)

    # -- the member store, called by name (whatever arguments MemberStore.load/save take) -------------------------
    def load(self, kid: str, key: dict | None = None):
        """(the record under ``kid`` if it is one and its key is ``key``, records refused by this call): the caller
        counts the refusals as its own (a store per call: concurrent calls never mix their counts)."""
        store = S.MemberStore(self.store.root)
        rec = store.load(kid, key)
        if rec is not None:
            self._count(records_read=1, record_bytes_read=self._size(kid))
        return rec, store.rejected

    def save(self, rec, *args, **kw) -> None:
        self.store.save(rec, *args, **kw)
        self._count(records_written=1, record_bytes_written=self._size(S.key_id(rec.key)))

    def count(self) -> int:
        return len(self.store)

    # -- other files and lookups in the results directory ---------------------------------------------------------
    def write_files(self, relpath: str, files: dict[str, bytes]) -> None:
        """Write ``files`` (name -> bytes) into ``relpath`` of the results directory, each atomically."""
        from tuneall.rundir.fsio import atomic_write_bytes

        folder = Path(self.results_dir) / _safe(relpath)
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            atomic_write_bytes(folder / _safe(name), data)
        self._count(files_written=len(files), file_bytes_written=sum(len(d) for d in files.values()))

    def lookup(self, fn: Callable, *args):
        """``fn(*args)`` run here, on the driver's disk (a read-only lookup such as a repeated point's journal
        record; ``fn`` is a module-level function, shipped by reference)."""
        self._count(lookups=1)
        return fn(*args)

    def stats(self) -> dict:
        with self.mu:
            return {**self.traffic, "pid": os.getpid()}


class _Renewer:
    """One daemon thread per process renewing the leases of the locks this process holds."""

    def __init__(self):
        self.held: dict[str, Any] = {}  # token -> service handle
        self.mu = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, token: str, service) -> None:
        with self.mu:
            self.held[token] = service
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, daemon=True, name="tuneall-store-lease")
                self.thread.start()

    def remove(self, token: str) -> None:
        with self.mu:
            self.held.pop(token, None)

    def _run(self) -> None:
        import ray

        while True:
            time.sleep(LEASE_S / 4)
            with self.mu:
                held = list(self.held.items())
            for token, service in held:
                with contextlib.suppress(Exception):  # the run is ending: the lease simply lapses
                    ray.get(service.renew.remote(token), timeout=LEASE_S / 2)


_RENEWER = _Renewer()


class ServiceStore(S.MemberStore):
    """A trial's member store on a node without the results directory: every call goes to the driver's
    :class:`StoreService` (``root`` is the store folder on the driver, for messages only)."""

    def __init__(self, root, service):
        super().__init__(root)
        self.service = service

    def _call(self, method: str, *args, **kw):
        import ray

        return ray.get(getattr(self.service, method).remote(*args, **kw))

    @contextlib.contextmanager
    def lock(self, kid: str, blocking: bool = True):
        """The member's lock across the cluster; yields False if not blocking and another trial holds it."""
        token = uuid.uuid4().hex
        wait = 0.05
        while not self._call("try_lock", kid, token):
            if not blocking:
                yield False
                return
            time.sleep(wait)
            wait = min(1.0, wait * 1.5)
        _RENEWER.add(token, self.service)
        try:
            yield True
        finally:
            _RENEWER.remove(token)
            self._call("unlock", kid, token)

    def load(self, kid: str, key: dict | None = None):
        """The driver's record, checked there against ``key`` (a damaged or foreign record counted in this trial's
        ``rejected``, as on one disk)."""
        rec, rejected = self._call("load", kid, key)
        self.rejected += rejected
        return rec

    def save(self, rec, *args, **kw) -> None:
        self._call("save", rec, *args, **kw)

    def __len__(self) -> int:
        return self._call("count")


def start(results_dir, lease_s: float = LEASE_S, store=None):
    """The store service of ``results_dir`` (its member store in ``store`` where runs share one), started on this
    (the driver's) node and ready."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    service = ray.remote(StoreService).options(
        num_cpus=0, max_concurrency=64, max_restarts=0, name=f"tuneall-store-{uuid.uuid4().hex[:8]}",
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
    ).remote(str(results_dir), lease_s, None if store is None else str(store))
    ray.get(service.stats.remote())  # started (and its disk reached) before the first trial needs it
    return service


__all__ = ["StoreService", "ServiceStore", "start", "LEASE_S"]
