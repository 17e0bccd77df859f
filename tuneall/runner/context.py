"""A run's options and the trial's side: :class:`RunOptions` (where and how a run executes), the typed
:class:`TrialContext` every trial receives, user families shipped by value, and the one trainable Ray Tune runs."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from tuneall.core.budget import Budget
from tuneall.core.config import HEARTBEAT_S, Resources, TrainConfig
from tuneall.core.errors import ConfigError
from tuneall.data.registry import DEFAULT_VAL_FRACTION
from tuneall.rundir.results import results_path

EXECUTORS = ("ray", "local")


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """What every run (search or sweep) shares: data, seeds, resources, where results go, which Ray."""

    dataset: str = "digits"  # a built-in name, a user dataset's name (tuneall.data.user) or an import path
    data_dir: str | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION  # validation carved from the training split (user data with its own x_val: unused)
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
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            raise ConfigError(f"name must be a plain directory name (no '/', not '.' or '..'), but got {self.name!r}")
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
    # The driver's FLOP counts (tuneall.models.flops.flop_table): a trial process plans with them instead of counting
    # again (a first count imports torch._dynamo: seconds in every new trial process).
    flops: tuple = ()
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


def warn_once_per_run() -> None:
    """In a trial process: Python warnings (a user factory's or library's UserWarning, DeprecationWarning,
    FutureWarning) are not printed again. The driver built every user family on the data and timed the
    architectures before the first trial, so it has shown them once; every trial process repeating them (Ray
    prefixes each with the process) buries the progress lines."""
    import warnings

    for category in (UserWarning, DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)


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
    if ctx.flops:
        from tuneall.models.flops import preload_flops

        preload_flops(ctx.flops)  # after the families: registering one forgets every count
    torch.set_num_threads(ctx.resources.threads)
    return {**ctx.job(config, ctx, data), "threads": torch.get_num_threads()}


def trainable(config: dict, ctx: TrialContext, data) -> None:
    """The Ray Tune function trainable of every tuneall run (public: ``Tuner.restore(path, trainable=...)``)."""
    import ray
    from ray import tune

    quiet_sigterm_exit()
    warn_once_per_run()
    # The node a trial ran on goes into the tables (multi-machine runs: which trials ran where).
    tune.report({**run_job(config, ctx, data), "node_id": ray.get_runtime_context().get_node_id()})


__all__ = ["EXECUTORS", "RunOptions", "TrialContext", "quiet_sigterm_exit", "ship_families", "install_families",
           "run_job", "trainable"]
