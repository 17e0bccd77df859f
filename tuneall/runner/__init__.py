"""The runner: the one driver of Ray that search and sweep share.

A run (a search or a sweep) is a set of trials; each trial is a config handed to a *job* function
``job(config, ctx, data) -> metrics`` in a Ray Tune trial process (or, for the local executor, in this process).
The runner owns everything around that call: starting a local Ray on this machine or joining ``--address``, checking
that a trial's resources fit the cluster, the trainable that Ray Tune runs (threads, quiet shutdown, the node that
ran it), concurrency, and stopping the Ray it started. Search (:mod:`tuneall.tuning.driver`) and sweep
(:mod:`tuneall.sweeping.driver`) are specs on top: what the trials are and what their results become.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from tuneall.core.budget import Budget
from tuneall.core.config import HEARTBEAT_S, Resources, TrainConfig
from tuneall.core.errors import ConfigError
from tuneall.rundir.results import results_path

EXECUTORS = ("ray", "local")
# The node address of a local Ray: loopback (Linux routes all of 127/8 to lo; elsewhere Ray picks loopback itself).
LOCAL_NODE_IP = "127.0.0.2" if sys.platform.startswith("linux") else None


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """What every run (search or sweep) shares: data, seeds, resources, where results go, which Ray."""

    dataset: str = "digits"  # a built-in name, a user dataset's name (tuneall.data.user) or an import path
    data_dir: str | None = None
    val_fraction: float = 0.1  # validation carved from the training split (user data with its own x_val: unused)
    seeds: int = 3  # repeats of each allocation over seeds
    seed: int = 0  # sampler seed and base seed of the members
    resources: Resources = field(default_factory=Resources)
    concurrency: int | None = None  # trials at a time (default: as many as the CPUs hold)
    name: str | None = None  # results directory name (default: from the run's settings)
    storage_path: str = "results"
    address: str | None = None  # an existing Ray cluster; None starts a local Ray
    num_cpus: int | None = None  # CPUs of the local Ray (default: all)
    dashboard: bool = False
    max_failures: int = 0  # retries of a trial whose process dies
    executor: str = "ray"  # 'ray': Ray Tune trials; 'local': one after another in this process (no Ray)

    def __post_init__(self):
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"seeds must be an integer >= 1, but got {self.seeds!r}")
        # Member seeds are seed + repeat * 1000 + member: torch and numpy take seeds in [0, 2**32).
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**31:
            raise ConfigError(f"seed must be an integer in [0, 2**31), but got {self.seed!r}")
        if self.concurrency is not None and (isinstance(self.concurrency, bool) or not isinstance(
                self.concurrency, int) or self.concurrency < 1):
            raise ConfigError(f"concurrency must be an integer >= 1, but got {self.concurrency!r}")
        if self.num_cpus is not None and (isinstance(self.num_cpus, bool) or not isinstance(self.num_cpus, int)
                                          or self.num_cpus < 1):
            raise ConfigError(f"num_cpus must be an integer >= 1, but got {self.num_cpus!r}")
        if isinstance(self.max_failures, bool) or not isinstance(self.max_failures, int) or self.max_failures < 0:
            raise ConfigError(f"max_failures must be an integer >= 0, but got {self.max_failures!r}")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, but got {self.executor!r}")
        from tuneall.data import val_count

        val_count(1000, self.val_fraction)  # checks the fraction (one message for every entry point)
        if self.address is not None and self.num_cpus is not None:
            raise ConfigError("num_cpus sizes a local Ray; it cannot be combined with address (a running cluster)")

    def default_name(self) -> str:  # overridden by each run kind
        return "run"

    @property
    def dataset_label(self) -> str:
        """The dataset as a directory name may hold it (an import path's file stem and attribute)."""
        name = self.dataset.rsplit("/", 1)[-1]
        return name.replace(".py:", "-").replace(":", "-")

    @property
    def run_name(self) -> str:
        return self.name or self.default_name()

    @property
    def results_dir(self) -> Path:
        return results_path(self.storage_path, self.run_name)


@dataclass(frozen=True)
class TrialContext:
    """What a trial process needs besides its config and the data: the same shape for search and sweep."""

    job: Callable[[dict, "TrialContext", Any], dict]  # config, ctx, data -> metrics (a module-level function)
    resources: Resources
    seeds: int
    seed: int
    rules: tuple[str, ...] = ("mean",)  # ensemble combinations; the first is the primary one
    objectives: tuple[tuple[str, str], ...] = ()  # a search's (metric, mode) pairs
    budget: Budget | None = None  # a search's budget (a sweep's jobs carry their own budgets)
    unit: str = "param-steps"
    min_steps: int = 50
    results_dir: str | None = None  # where a trial may look for answers already recorded (repeats)
    # Model families from user code, pickled by value (tuneall.core.imports): run_job registers them in the trial process
    # before the job, so workers and cluster nodes need neither the user's script nor their package.
    families: bytes = b""
    heartbeat_s: float = HEARTBEAT_S  # seconds between a running trial's progress lines (0: quiet)
    save_members: str = "none"  # 'all' | 'best' | 'none': a search's trials keep their members' weights
    # Member reuse through the results directory's member store (tuneall.store.reuse): None (off), or
    # {"mode": "grid" | "own", "ks": {architecture key or family: feasible ks}}, or for a sweep
    # {"mode": "sweep", "ks": {architecture key: ks}, "budgets": [C, ...]}.
    reuse: dict | None = None
    # How trials reach the results directory on a cluster (tuneall.store.backend.Storage; None: on this disk).
    storage: Any = None

    def train_config(self, train: TrainConfig) -> TrainConfig:
        """A plan's optimiser settings as they run inside a trial: a heartbeat for long members, and the GPU when
        the trial holds (a fraction of) one."""
        device = self.resources.device if self.resources.gpus > 0 else train.device
        return replace(train, heartbeat_s=self.heartbeat_s, device=device)


def quiet_sigterm_exit() -> None:
    """In a trial process: do not print the SystemExit that Ray's SIGTERM handler raises at shutdown.

    Ray stops reused trial processes with SIGTERM when a run ends; its handler raises SystemExit wherever the
    interpreter is, and inside a weakref or finaliser callback Python reports that as "Exception ignored in ..."
    with a traceback: noise after a run whose results are all in. Every other unraisable error still prints.
    """
    if getattr(sys.unraisablehook, "tuneall", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable):
        if unraisable.exc_type is not SystemExit:
            previous(unraisable)

    hook.tuneall = True
    sys.unraisablehook = hook


def ship_families() -> bytes:
    """This process's user model families, pickled by value for :class:`TrialContext` (b"" when there are none)."""
    from tuneall.models import user_families

    fams = user_families()
    if not fams:
        return b""
    from tuneall.core.imports import dumps_by_value

    return dumps_by_value(fams, [f.builder for f in fams] + [f.valid_depth for f in fams])


def install_families(blob: bytes) -> tuple[str, ...]:
    """Register the user families of ``blob`` (from :func:`ship_families`) in this process; their names."""
    if not blob:
        return ()
    from tuneall.core.imports import loads
    from tuneall.models import add_family

    fams = loads(blob)
    for fam in fams:
        add_family(fam)
    return tuple(f.name for f in fams)


def run_job(config: dict, ctx: TrialContext, data) -> dict:
    """One trial's job with the trial's own CPUs (no oversubscription of a shared machine), after registering the
    user's model families in this process (a Ray worker never ran the user's script).

    The torch thread count goes into the metrics: float reductions depend on it, so the same allocation trained
    with another thread count (``tuneall train`` uses torch's default) can differ in the last digits."""
    import torch

    from tuneall.store.backend import check_reach

    check_reach(ctx.storage)  # a shared-disk run never writes a private copy on a node without that disk
    install_families(ctx.families)
    torch.set_num_threads(ctx.resources.threads)
    return {**ctx.job(config, ctx, data), "threads": torch.get_num_threads()}


def trainable(config: dict, ctx: TrialContext, data) -> None:
    """The Ray Tune function trainable of every tuneall run (public: ``Tuner.restore(path, trainable=...)``)."""
    import ray
    from ray import tune

    quiet_sigterm_exit()
    # The node a trial ran on goes into the tables (multi-machine runs: which trials ran where).
    tune.report({**run_job(config, ctx, data), "node_id": ray.get_runtime_context().get_node_id()})


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
    kw = dict(configure_logging=True, logging_level="WARNING", log_to_driver=True)
    if opts.address:
        try:
            ray.init(address=opts.address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot reach the Ray cluster at address {opts.address}: "
                              f"{str(e).splitlines()[0]}") from None
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
    with _quiet_default_auth_notice():
        ctx = ray.init(address="local", num_cpus=opts.num_cpus, include_dashboard=opts.dashboard,
                       dashboard_host="127.0.0.1", **kw)
    if opts.dashboard:
        print(f"Ray dashboard: http://{ctx.dashboard_url} (bound to 127.0.0.1; Ray token authentication on)")
    return True


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


def with_trial_resources(ctx: TrialContext, data, bundles: Callable[[dict], list[dict]]):
    """The Ray Tune trainable for this run: the shared trainable bound to ``ctx`` and ``data`` (shipped once through
    the object store) and a placement group per trial from ``bundles(config)``."""
    from ray import tune

    return tune.with_resources(tune.with_parameters(trainable, ctx=ctx, data=data),
                               lambda config: tune.PlacementGroupFactory(bundles(config)))


def run_local(ctx: TrialContext, configs: list[dict], data) -> list[tuple[str, dict, dict, str | None]]:
    """The trials one after another in this process: (trial id, config, metrics, error) per trial, failures recorded
    as Ray Tune would record them (seconds-long runs and debugging need no Ray start-up)."""
    import torch

    threads = torch.get_num_threads()
    out = []
    try:
        for i, config in enumerate(configs):
            try:
                out.append((f"local_{i:05d}", config, run_job(config, ctx, data), None))
            except Exception as e:  # noqa: BLE001  recorded as a failed trial, as Ray Tune would
                out.append((f"local_{i:05d}", config, {}, f"{type(e).__name__}: {e}"))
    finally:
        torch.set_num_threads(threads)
    return out


def outcomes(result_grid) -> list[tuple[str, dict, dict, str | None]]:
    """(trial id, config, metrics, first line of the error) of every trial of a Ray Tune ResultGrid."""
    return [(dict(r.metrics or {}).get("trial_id") or Path(r.path).name, dict(r.config or {}), dict(r.metrics or {}),
             str(r.error).splitlines()[0] if r.error else None) for r in result_grid]


def ray_member_trainer(res: Resources, families: bytes = b""):
    """Train members as Ray tasks, member i in bundle i + 1 of the trial's placement group (parallel members)."""
    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    def trainer(plan, data, progress=None, eval_steps=()):
        pg = ray.util.get_current_placement_group()
        data_ref = ray.put(data)
        task = ray.remote(train_member_task)
        a = plan.allocation
        refs = [
            [task.options(num_cpus=res.cpus, num_gpus=res.gpus, scheduling_strategy=PlacementGroupSchedulingStrategy(
                pg, placement_group_bundle_index=i + 1)).remote(a.family, a.width, plan.depth, data_ref, plan.steps,
                                                                 seed, plan.train, res.cpus, eval_steps, families)
             for i, seed in enumerate(seeds)]
            for seeds in plan.seeds
        ]
        return [ray.get(r) for r in refs]

    return trainer


def train_member_task(family, width, depth, data, steps, seed, train, cpus, eval_steps, families=b""):
    """One member as a Ray task, with its bundle's CPUs as torch threads."""
    import torch

    from tuneall.training.member import train_member

    install_families(families)
    torch.set_num_threads(max(1, int(cpus)))
    return train_member(family, width, depth, data, steps, seed, train, eval_steps)


__all__ = ["RunOptions", "TrialContext", "trainable", "run_job", "ray_session", "check_ray_options", "check_fits",
           "check_local_fits", "local_cpus",
           "concurrency", "with_trial_resources", "run_local", "outcomes", "quiet_sigterm_exit", "ray_member_trainer",
           "train_member_task", "ship_families", "install_families", "EXECUTORS"]
