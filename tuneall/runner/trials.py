"""Running trials: THE one place Ray Tune's ``Tuner`` is assembled (search, halving rungs and sweep all call
:func:`run_tune`), the local executor, trial outcomes, and a trial's members trained as Ray tasks."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from tuneall.core.config import Resources
from tuneall.runner.context import TrialContext, install_families, run_job, trainable
from tuneall.runner import signals


class legacy_output:
    """Select Ray Tune's legacy output engine (the one that takes a ``progress_reporter``) for one ``fit()``."""

    KEY = "RAY_AIR_NEW_OUTPUT"

    def __enter__(self):
        import os

        self.before = os.environ.get(self.KEY)
        os.environ[self.KEY] = "0"
        return self

    def __exit__(self, *exc):
        import os

        if self.before is None:
            os.environ.pop(self.KEY, None)
        else:
            os.environ[self.KEY] = self.before
        return False


def run_tune(trainable, *, name: str, storage_path: str, concurrency: int, max_failures: int = 0, verbose: int = 0,
             param_space: dict | None = None, search_alg=None, num_samples: int = 1, metric: str | None = None,
             mode: str | None = None, progress_reporter=None, callbacks=()):
    """Assemble Ray Tune's Tuner for a run and fit it; returns the ResultGrid. The one place tuneall builds
    ``Tuner``/``TuneConfig``/``RunConfig``: search, halving rungs and sweep differ only in these arguments.

    ``reuse_actors``: a finished trial's process runs the next one, so torch, tuneall and the dataset are loaded once
    per process, not once per trial (measured: a 4 s gap between trials without it; benchmarks/search_efficiency.py).
    ``metric``/``mode`` in the TuneConfig: ``ResultGrid.get_best_result()`` (also after ``Tuner.restore``) needs no
    arguments."""
    from ray import tune

    best_by = {"metric": metric, "mode": mode} if metric else {}
    callbacks = [_stop_on_signal(), *callbacks]
    tune_config = tune.TuneConfig(search_alg=search_alg, num_samples=num_samples, max_concurrent_trials=concurrency,
                                  reuse_actors=True, **best_by)
    run_config = tune.RunConfig(name=name, storage_path=storage_path, verbose=verbose,
                                failure_config=tune.FailureConfig(max_failures=max_failures),
                                progress_reporter=progress_reporter, callbacks=callbacks)
    # legacy_output: the engine that takes tuneall's progress reporter (verbose=0: it prints nothing); deferred: a
    # stop signal is raised at the loop's next step (the callback below), never inside a library's critical section.
    with legacy_output(), signals.deferred(), idle_processes_kept(concurrency):
        return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config).fit()


@contextmanager
def idle_processes_kept(n: int) -> Iterator[None]:
    """While a searcher has nothing to suggest (halving between rungs) Ray Tune keeps one idle trial process and
    stops the rest (``_ObjectCache(may_keep_one=True)``), so the next rung starts processes afresh (imports, data: a
    few seconds each). For one ``fit()``: keep up to ``n`` idle ones while no trial waits for resources; where one
    waits (for any resources) or the search is over, Ray's own rule applies, so a kept process never holds what a
    trial needs. Ray's private name: where it is missing, nothing changes."""
    from ray.tune.execution import tune_controller as tc

    base = getattr(tc, "_ObjectCache", None)
    if base is None or n <= 1:
        yield
        return

    class KeepIdle(base):
        def cache_object(self, key, obj) -> bool:
            if self.total_max_objects == 0 and self.num_cached_objects < n:  # nothing staged: keep it for later
                self._cached_objects[key].append(obj)
                self._num_cached_objects += 1
                return True
            return super().cache_object(key, obj)

        def flush_cached_objects(self, force_all: bool = False):
            if not force_all and self.total_max_objects == 0 and self.num_cached_objects <= n:
                return iter(())
            return super().flush_cached_objects(force_all=force_all)

    tc._ObjectCache = KeepIdle
    try:
        yield
    finally:
        tc._ObjectCache = base


def _stop_on_signal():
    """A Tune callback that raises, at the next step of Tune's loop, a stop signal received since (deferred)."""
    from ray import tune

    class StopOnSignal(tune.Callback):
        def on_step_begin(self, iteration, trials, **info):
            signals.raise_if_pending()

    return StopOnSignal()


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

    def trainer(plan, data, progress=None, eval_steps=()):  # a Trainer (tuneall.training.trainers)
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

    trainer.method = res.members
    return trainer


def train_member_task(family, width, depth, data, steps, seed, train, cpus, eval_steps, families=b""):
    """One member as a Ray task, with its bundle's CPUs as torch threads."""
    import torch

    from tuneall.training.member import train_member

    install_families(families)
    torch.set_num_threads(max(1, int(cpus)))
    return train_member(family, width, depth, data, steps, seed, train, eval_steps, snapshot_steps=(steps,))


__all__ = ["legacy_output", "run_tune", "with_trial_resources", "run_local", "outcomes", "ray_member_trainer", "train_member_task"]
