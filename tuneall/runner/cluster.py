"""Ray for a run: a local Ray of its own (loopback only) or the cluster at ``--address``, the checks that a trial's
resources fit before anything starts, and how many trials run at once."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

from tuneall.core.errors import ConfigError
from tuneall.runner.context import RunOptions

# The node address of a local Ray: loopback (Linux routes all of 127/8 to lo; elsewhere Ray picks loopback itself).
LOCAL_NODE_IP = "127.0.0.2" if sys.platform.startswith("linux") else None


def _check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast on an unreachable HOST:PORT (ray.init would retry for minutes before giving up)."""
    import socket

    if address == "auto" or "://" in address:
        return  # Ray resolves these itself
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"address must be HOST:PORT (e.g. 10.0.0.1:6379), but got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ConfigError(f"cannot reach the Ray cluster at address {address}: {e.strerror or e}") from None


def check_ray_options(opts: RunOptions) -> None:
    """What can be checked about the Ray to use before anything is created: reachability, dashboard packages."""
    if opts.executor == "local":
        return
    from tuneall.store.backend import check_env

    check_env()
    if opts.address:
        _check_reachable(opts.address)
    elif opts.dashboard:
        import importlib.util

        if importlib.util.find_spec("aiohttp") is None:
            raise ConfigError('the dashboard needs Ray\'s dashboard packages: pip install "tuneall[dashboard]"')


def _init_ray(opts: RunOptions) -> bool:
    """Connect to ``opts.address`` or start a local Ray; returns True when this call started or joined it."""
    import ray

    if ray.is_initialized():
        return False
    if not sys.stdout.isatty():  # trials' lines reach a file or pipe without ANSI colour codes
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    kw = dict(configure_logging=True, logging_level="WARNING", log_to_driver=True)
    if opts.address:
        try:
            ray.init(address=opts.address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot reach the Ray cluster at address {opts.address}: "
                              f"{str(e).splitlines()[0]}") from None
        _reinstall_signals()
        return True
    # A local Ray is for this machine only: its node address is a loopback one, so every Ray service that binds the
    # node address (runtime-env agent, dashboard agent and its metrics export) listens on loopback. 127.0.0.2, not
    # 127.0.0.1: Ray rewrites 127.0.0.1 to the machine's external address. TUNEALL_NODE_IP overrides it. Ray's C++
    # gRPC servers (GCS, raylet, core workers) bind every interface whatever the node address; they require Ray's
    # token (on by default for a new local Ray; see README "Security").
    node_ip = os.environ.get("TUNEALL_NODE_IP") or LOCAL_NODE_IP
    if node_ip:
        kw["_node_ip_address"] = node_ip
    # address="local": always a new Ray of our own, never silently joining a cluster someone started here.
    with _quiet_default_auth_notice(), _own_process_groups():
        ctx = ray.init(address="local", num_cpus=opts.num_cpus, include_dashboard=opts.dashboard,
                       dashboard_host="127.0.0.1", **kw)
    _reinstall_signals()
    if opts.dashboard:
        print(f"Ray dashboard: http://{ctx.dashboard_url} (bound to 127.0.0.1; Ray token authentication on)")
    return True


def _reinstall_signals() -> None:
    from tuneall.runner import signals

    signals.reinstall()  # ray.init put Ray's native SIGTERM handler (a stack dump and abort) in place of ours


@contextmanager
def _own_process_groups() -> Iterator[None]:
    """Start a local Ray's processes (GCS, raylet and the workers it forks) outside the driver's process group.

    A job scheduler's SIGTERM, or a kill of the whole group, otherwise reaches Ray's GCS and raylet as well as the
    driver: they die while the driver's main thread may sit in Ray's C++ code, and the driver's core worker aborts
    before tuneall's handler can leave the run ``interrupted``. Ray does the same on Windows (a new process group per
    process) where the kernel ties their lives to the driver's; on Linux that tie is ``PR_SET_PDEATHSIG``, checked
    here too, so a SIGKILLed driver still takes its Ray with it. Ctrl-C at a terminal is unaffected: Ray's processes
    block SIGINT and the driver stops them on its way out. Wraps Ray's private ``ConsolePopen`` for the duration of
    ``ray.init`` only; where that name is missing the processes simply stay in the driver's group.
    """
    try:
        from ray._private import services, utils

        base = services.ConsolePopen
        isolate = sys.platform.startswith("linux") and utils.detect_fate_sharing_support()
    except (ImportError, AttributeError):
        isolate = False
    if not isolate:
        yield
        return

    class _OwnGroupPopen(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            ray_preexec = kwargs.get("preexec_fn")

            def preexec():
                os.setpgid(0, 0)
                if ray_preexec is not None:
                    ray_preexec()

            kwargs["preexec_fn"] = preexec
            super().__init__(*args, **kwargs)

    services.ConsolePopen = _OwnGroupPopen
    try:
        yield
    finally:
        services.ConsolePopen = base


@contextmanager
def _quiet_default_auth_notice() -> Iterator[None]:
    """A new local Ray enables token authentication by default and logs a warning saying so on every start; drop
    that one notice (auth stays on; a disabled-auth warning and everything else still print)."""
    import logging

    log = logging.getLogger("ray._private.authentication.authentication_token_setup")

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")

    log.addFilter(keep)
    try:
        yield
    finally:
        log.removeFilter(keep)


def local_cpus() -> int:
    """The CPUs a local Ray would see here (cgroup quotas and CPU affinity respected, as Ray counts them)."""
    try:
        from ray._private.utils import get_num_cpus

        return int(get_num_cpus())
    except Exception:  # noqa: BLE001 - a private Ray helper: fall back to the affinity mask
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_local_fits(opts: RunOptions, bundles: list[dict[str, float]]) -> None:
    """Before a local Ray starts (or anything is written): refuse trials that this machine can never hold, which Ray
    would otherwise wait for forever. A cluster (``address``) is checked by :func:`check_fits` once joined."""
    if opts.executor == "local" or opts.address:
        return
    cpus = opts.num_cpus if opts.num_cpus is not None else local_cpus()
    for b in bundles:
        if b.get("CPU", 0) > cpus:
            src = "--num-cpus" if opts.num_cpus is not None else "this machine"
            raise ConfigError(f"a trial asks for {b['CPU']:g} CPUs but the local Ray has {cpus} ({src}); lower the "
                              "cpus per trial")
    need_cpu = sum(b.get("CPU", 0) for b in bundles)
    if need_cpu > cpus:
        raise ConfigError(f"a trial asks for {need_cpu:g} CPUs in all but the local Ray has {cpus}; lower the cpus "
                          "per trial or the ensemble size")
    need_gpu = max((b.get("GPU", 0) for b in bundles), default=0)
    if need_gpu:
        import torch

        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if need_gpu > have:
            raise ConfigError(f"a trial asks for {need_gpu:g} GPU(s) per bundle but this machine has {have} usable "
                              "by torch; drop gpus per trial")


def check_fits(bundles: list[dict[str, float]]) -> None:
    """Refuse a trial whose resource request the cluster can never satisfy (Ray would wait for it forever)."""
    import ray

    total = ray.cluster_resources()
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    need_cpu = sum(b.get("CPU", 0) for b in bundles)
    need_gpu = sum(b.get("GPU", 0) for b in bundles)
    if need_gpu and not total.get("GPU"):
        raise ConfigError(f"a trial asks for {need_gpu:g} GPU(s) but the Ray cluster has none; drop gpus per trial")
    for b in bundles:  # one bundle must fit on one node
        for key in ("CPU", "GPU"):
            if b.get(key, 0) > max((n.get(key, 0) for n in nodes), default=0):
                have = max((n.get(key, 0) for n in nodes), default=0)
                raise ConfigError(f"a trial asks for {b[key]:g} {key}(s) per bundle but the largest node of the Ray "
                                  f"cluster has {have:g}; lower the {key.lower()}s per trial")
    if need_cpu > total.get("CPU", 0):
        raise ConfigError(f"a trial asks for {need_cpu:g} CPUs but the Ray cluster has {total.get('CPU', 0):g}")


@contextmanager
def ray_session(opts: RunOptions) -> Iterator[None]:
    """Ray for the duration of a run (nothing for the local executor); stops only the Ray this call started."""
    if opts.executor == "local":
        yield
        return
    started = _init_ray(opts)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


def concurrency(opts: RunOptions, cpus_per_trial: float) -> int:
    """Trials at a time: as asked, else as many as the cluster's CPUs hold."""
    if opts.concurrency:
        return opts.concurrency
    if opts.executor == "local":
        return 1
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_trial, 1e-9)))


__all__ = ["LOCAL_NODE_IP", "check_ray_options", "local_cpus", "check_local_fits", "check_fits", "ray_session",
           "concurrency"]
