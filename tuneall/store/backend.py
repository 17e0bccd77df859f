"""How a run's trials reach its results directory: directly, or through the driver's store service.

On one machine (a local Ray, or a cluster of one node) trials use the results directory directly, as they always
did. At the start of a run on a cluster (``--address``, or a driver that joined one with several alive nodes) the
driver writes a marker file into the results directory and a tiny task pinned to each alive node
(``NodeAffinitySchedulingStrategy``, no CPU; it only reads) reads it back. Then, in one printed line:

- **shared**: every node reads the marker (a disk every node mounts). Trials use the results directory directly
  (flock locks, atomic renames). The marker stays for the run: a trial on a node that does not read it (one that
  joined later without the disk) fails with one line instead of writing a private copy.
- **service**: some node does not. The driver starts :class:`tuneall.store.service.StoreService` on its own node
  and every trial's member store, saved weights and journal lookups go through it; no trial writes its node's disk.

``TUNEALL_STORE=service`` uses the service whatever the nodes reach (benchmarks and tests, also on one machine);
``TUNEALL_STORE=direct`` never starts it (the run then refuses a cluster whose nodes do not all read the directory).
Trials get the run's :class:`Storage` in their context (``TrialContext.storage``) and use :func:`open_store`,
:func:`write_files`, :func:`on_driver` and :func:`check_reach`.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tuneall.core.errors import ConfigError

MARKER = ".tuneall-reach"
TRAFFIC = "store_traffic.json"
MODES = ("direct", "service")  # TUNEALL_STORE values


@dataclass(frozen=True)
class Storage:
    """How a run's trials reach the results directory: ``mode`` 'local' (one machine), 'shared' (every node mounts
    it; ``marker`` and ``token``: the file a trial checks) or 'service' (``service``: the driver's store service)."""

    mode: str = "local"
    service: Any = None
    marker: str | None = None
    token: str | None = None


_CURRENT: list[Storage] = []


def current() -> Storage | None:
    """The storage of the run this driver is running now (None outside a run)."""
    return _CURRENT[-1] if _CURRENT else None


def check_env() -> str | None:
    """``TUNEALL_STORE`` (None when unset), checked before a run creates anything."""
    mode = os.environ.get("TUNEALL_STORE") or None
    if mode is not None and mode not in MODES:
        raise ConfigError(f"TUNEALL_STORE must be one of {', '.join(MODES)}, but got {mode!r}")
    return mode


def _reads_marker(path: str, token: str, store: str | None = None) -> bool:
    """On a node: whether it reads the driver's marker, and sees the shared member store's folder where the run has
    one (reads only: writes nothing on that node)."""
    try:
        return Path(path).read_text() == token and (store is None or Path(store).is_dir())
    except OSError:
        return False


def probe(results_dir: Path, store=None) -> tuple[list[str], list[str], str, str]:
    """Write the marker and read it on every alive node: (alive node ids, ids of those that cannot read it, marker
    path, token). The marker is left in place (a shared-disk run's trials check it). ``store``: a member store
    outside the results directory, which every node must also see (the driver creates the folder; no marker is
    written into it)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from tuneall.rundir.fsio import atomic_write_text

    token = uuid.uuid4().hex
    marker = Path(results_dir) / MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, token)
    if store is not None:
        Path(store).mkdir(parents=True, exist_ok=True)
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    task = ray.remote(num_cpus=0, max_retries=0)(_reads_marker)
    refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(
        str(marker), token, None if store is None else str(store)) for n in nodes]
    seen = ray.get(refs, timeout=300)
    return nodes, [n for n, ok in zip(nodes, seen) if not ok], str(marker), token


def choose(results_dir: Path, address: str | None, verbose: int = 1, store=None) -> Storage:
    """The storage of a run whose driver has joined Ray (see the module docstring); one line says which, on a
    cluster or where ``TUNEALL_STORE`` chose. ``store``: the member store's folder (the service serves it)."""
    import ray

    forced = check_env()
    if not ray.is_initialized():
        return Storage()
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if not address and len(alive) <= 1 and forced != "service":
        return Storage()  # one machine: the results directory as always
    from tuneall.store.records import STORE_DIR

    shared = store is not None and Path(store) != Path(results_dir) / STORE_DIR
    nodes, blind, marker, token = probe(results_dir, store if shared else None)
    if forced != "service" and not blind:
        if verbose:
            print(f"tuneall: storage: all {len(nodes)} node(s) read {results_dir} (a shared disk): trials use it "
                  "directly", flush=True)
        return Storage("shared", marker=marker, token=token)
    if forced == "direct":
        with contextlib.suppress(OSError):
            Path(marker).unlink()
        raise ConfigError(f"{len(blind)} of {len(nodes)} Ray node(s) cannot read {results_dir} and TUNEALL_STORE="
                          "direct forbids the driver's store service; mount it on every node or unset TUNEALL_STORE")
    from tuneall.store.service import start

    service = start(results_dir, store=store)
    if verbose:
        why = (f"{len(blind)} of {len(nodes)} node(s) cannot read {results_dir} (no shared disk)" if blind
               else "TUNEALL_STORE=service")
        print(f"tuneall: storage: {why}: member store, saved weights and journal lookups go through the driver's "
              "store service", flush=True)
    return Storage("service", service=service, marker=marker, token=token)


@contextlib.contextmanager
def serving(results_dir, address: str | None, verbose: int = 1, store=None):
    """The run's :class:`Storage` (:func:`current`) for the block; at the end the service's traffic goes to
    ``store_traffic.json`` (in the results directory, never a shared store's folder), the service stops and the
    marker is removed. ``store``: the run's member store folder (default: the results directory's own)."""
    storage = choose(Path(results_dir), address, verbose, store)
    _CURRENT.append(storage)
    try:
        yield storage
    finally:
        _CURRENT.remove(storage)
        if storage.service is not None:
            import ray

            from tuneall.rundir.fsio import atomic_write_text

            with contextlib.suppress(Exception):  # the counts are a report: never fail the run's end
                stats = ray.get(storage.service.stats.remote(), timeout=60)
                stats.pop("pid", None)
                atomic_write_text(Path(results_dir) / TRAFFIC, json.dumps(stats, indent=1) + "\n")
            with contextlib.suppress(Exception):
                ray.kill(storage.service)
        if storage.marker:
            with contextlib.suppress(OSError):
                Path(storage.marker).unlink()


def _service(storage: Storage | None):
    return storage.service if storage is not None and storage.mode == "service" else None


def check_reach(storage: Storage | None) -> None:
    """In a trial of a shared-disk run: refuse to run on a node that does not read the results directory (it would
    write a private copy there)."""
    if storage is None or storage.mode != "shared" or _reads_marker(storage.marker, storage.token):
        return
    raise RuntimeError(f"node {_node_name()} does not read the results directory "
                       f"{Path(storage.marker).parent}, which every node read when the run started; mount it there, "
                       "or restart the run (it then goes through the driver's store service)")


def _node_name() -> str:
    """This node's Ray id inside a Ray worker, else the host name (asking Ray outside one would start a Ray)."""
    import socket
    import sys

    worker = sys.modules.get("ray._private.worker")
    if worker is not None and worker.global_worker.connected:
        import ray

        return ray.get_runtime_context().get_node_id()
    return socket.gethostname()


def reachable(results_dir, storage: Storage | None) -> bool:
    """Whether a trial here can keep files in the results directory (through the service, or on this disk)."""
    return bool(results_dir) and (_service(storage) is not None or Path(results_dir).is_dir())


def open_store(results_dir, storage: Storage | None, root=None):
    """A trial's member store: the driver's service where the run has one, else the folder on this disk (``root``,
    a store shared across runs, or the results directory's own)."""
    from tuneall.store import records as S

    root = Path(root) if root else Path(results_dir) / S.STORE_DIR
    service = _service(storage)
    if service is None:
        return S.MemberStore(root)
    from tuneall.store.service import ServiceStore

    return ServiceStore(root, service)


def write_files(results_dir, storage: Storage | None, relpath: str, files: dict[str, bytes]) -> None:
    """Write ``files`` (name -> bytes) into ``relpath`` of the results directory, through the service if any."""
    service = _service(storage)
    if service is not None:
        import ray

        ray.get(service.write_files.remote(relpath, files))
        return
    from tuneall.rundir.fsio import atomic_write_bytes

    folder = Path(results_dir) / relpath
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)


def on_driver(storage: Storage | None, fn: Callable, *args):
    """``fn(*args)``, a read-only lookup in the results directory, where its disk is: in the driver's service if
    the run has one, else here."""
    service = _service(storage)
    if service is None:
        return fn(*args)
    import ray

    return ray.get(service.lookup.remote(fn, *args))


__all__ = ["Storage", "current", "check_env", "choose", "serving", "probe", "check_reach", "reachable", "open_store",
           "write_files", "on_driver", "MARKER", "TRAFFIC"]
