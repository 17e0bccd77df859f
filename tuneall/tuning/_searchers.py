"""Ray Tune searchers around the sampler (imported lazily: this pulls in ray.tune).

:class:`TimeBudget` stops *launching* trials once a new one would end past the wall-clock budget (running trials
finish, so every trial in the report is complete); Ray Tune's ``TuneConfig(time_budget_s=...)`` would instead stop
the running trials mid-training. :class:`Points` hands out a fixed list of points (a grid search under a time budget,
halving's promoted points). :class:`Halving` runs successive halving's rungs and then its full trials as one Ray Tune
run.
"""

from __future__ import annotations

import json
import time
from typing import Callable

from ray.tune.search import Searcher


class TimeBudget(Searcher):
    """Wraps a searcher: ``suggest`` answers FINISHED once now + the expected trial time passes ``budget_s`` since
    the search started. The expected time is the mean measured duration of the trials finished so far, or before
    any has finished, ``expected_trial_s`` (the pre-run estimate, if there was one). The first trial always runs."""

    def __init__(self, searcher: Searcher, budget_s: float, expected_trial_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic, start: float | None = None):
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher, self.budget_s, self.expected_trial_s, self.clock = searcher, budget_s, expected_trial_s, clock
        self.start = clock() if start is None else start
        self.started: dict[str, float] = {}
        self.durations: list[float] = []
        self.stopped = False  # True once a trial was refused for lack of time

    def expected_s(self) -> float:
        if self.durations:
            return sum(self.durations) / len(self.durations)
        return self.expected_trial_s or 0.0

    def would_exceed(self) -> bool:
        return bool(self.started) and self.clock() - self.start + self.expected_s() > self.budget_s

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str):
        if self.would_exceed():
            self.stopped = True
            return Searcher.FINISHED
        suggestion = self.searcher.suggest(trial_id)
        if isinstance(suggestion, dict):
            self.started[trial_id] = self.clock()
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        if trial_id in self.started:
            self.durations.append(self.clock() - self.started[trial_id])
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    # Ray's experiment checkpoints unwrap ``.searcher`` chains: a wrapper gives its own state, the innermost saves.
    def get_state(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("searcher", "clock")}

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str):
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str):
        self.searcher.restore(checkpoint_path)


class Points(Searcher):
    """Suggests ``{"point": p, **extra}`` for each point in turn, then FINISHED (the config shape of a grid search)."""

    def __init__(self, points: list[dict], metric: str | None = None, mode: str | None = None,
                 extra: dict | None = None):
        super().__init__(metric=metric, mode=mode)
        self.points, self.next, self.extra = list(points), 0, dict(extra or {})

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return True

    def suggest(self, trial_id: str):
        if self.next >= len(self.points):
            return Searcher.FINISHED
        self.next += 1
        return {"point": self.points[self.next - 1], **self.extra}

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        pass

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "w") as f:
            json.dump({"points": self.points, "next": self.next, "extra": self.extra}, f)

    def restore(self, checkpoint_path: str):
        with open(checkpoint_path) as f:
            state = json.load(f)
        self.points, self.next, self.extra = state["points"], state["next"], state.get("extra", {})


class Halving(Searcher):
    """Successive halving as one Ray Tune run: each rung's trials (one per architecture, or a share of one:
    :func:`tuneall.tuning.search_cost.rung_trials`), then the promoted points' full trials. In one run, the trial
    processes Ray reuses (``reuse_actors``) import torch and tuneall and receive the data once for the whole search,
    not once per rung; a Tuner per rung paid that start-up three times.

    ``steps``: :func:`tuneall.tuning.halving.selection` (the generator that decides); ``rung_configs(fraction,
    points)``: a rung's trial configs; ``log_points(rung, fraction, entries)``: a finished rung trial's points, logged
    the moment it ends (a stop mid-rung keeps them); ``full(alive, rows)``: the searcher of the full trials once the
    rungs have decided. A rung's trials are suggested together and the next rung's only once every one of them has
    finished (``suggest`` answers None meanwhile: Ray asks again at its next step)."""

    def __init__(self, steps, rung_configs: Callable, log_points: Callable, full: Callable,
                 metric: str | None = None, mode: str | None = None):
        super().__init__(metric=metric, mode=mode)
        self.steps, self.rung_configs, self.log_points, self.full = steps, rung_configs, log_points, full
        self.queue: list[dict] = []
        self.running: dict[str, dict] = {}  # rung trial id -> its config
        self.got: dict[str, dict] = {}  # point id -> its metrics at the rung under way
        self.asked = None  # (rung, fraction, points) under way
        self.after: Searcher | None = None  # the full trials' searcher, once the rungs have decided
        self.started = False

    @property
    def stopped(self) -> bool:
        """A time budget refused a full trial."""
        return bool(getattr(self.after, "stopped", False))

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return True

    def _advance(self, results=None) -> None:
        self.started = True
        try:
            self.asked = self.steps.send(results)
        except StopIteration as end:
            self.asked, self.after = None, self.full(*end.value)
            return
        self.got, self.queue = {}, list(self.rung_configs(self.asked[1], self.asked[2]))

    def suggest(self, trial_id: str):
        if not self.started:
            self._advance()
        if self.after is not None:
            return self.after.suggest(trial_id)
        if not self.queue:
            return None  # the rung's trials are running: the next rung waits for every one of them
        self.running[trial_id] = self.queue.pop(0)
        return self.running[trial_id]

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        from tuneall.tuning.halving import point_id
        from tuneall.tuning.rungs import rung_points

        from tuneall.runner import signals

        config = self.running.pop(trial_id, None)
        if signals.received():  # the search is stopping: an unfinished rung is not a failed one (a resume reruns it)
            return
        if config is None:  # a full trial
            if self.after is not None:
                self.after.on_trial_complete(trial_id, result=result, error=error)
            return
        rung, fraction, todo = self.asked
        entries = [] if error or not result else rung_points(result)
        self.log_points(rung, fraction, entries)
        for e in entries:
            self.got[point_id(e["point"])] = e["metrics"]
        for p in config["trial"]["points"]:  # failed, or stopped before it reported
            self.got.setdefault(point_id(p), {"status": "failed", "error": "trial failed" if error else "no result"})
        if not self.running and not self.queue:
            self._advance([self.got.get(point_id(p), {"status": "failed", "error": "no result"}) for p in todo])

    # Ray Tune pickles its configuration (the searcher too) into the experiment directory for Tuner.restore: the
    # generator and the driver's closures stay out. A restored copy suggests nothing: tuneall resumes halving from
    # halving.jsonl and the journal (``tuneall resume``), never through Tuner.restore.
    def __getstate__(self) -> dict:
        return {"_metric": self._metric, "_mode": self._mode}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.started, self.after, self.queue, self.running, self.asked = True, Points([]), [], {}, None

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "w") as f:
            json.dump({"halving": True, "rung": self.asked[0] if self.asked else None}, f)

    def restore(self, checkpoint_path: str):
        pass
