"""Ray Tune searchers around the sampler (imported lazily: this pulls in ray.tune).

:class:`TimeBudget` stops *launching* trials once a new one would end past the wall-clock budget (running trials
finish, so every trial in the report is complete); Ray Tune's ``TuneConfig(time_budget_s=...)`` would instead stop
the running trials mid-training. :class:`Points` hands out a fixed list of points (a grid search under a time budget).
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
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher, self.budget_s, self.expected_trial_s, self.clock = searcher, budget_s, expected_trial_s, clock
        self.start = clock()
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
    """Suggests ``{"point": p}`` for each point in turn, then FINISHED (the config shape of a grid search)."""

    def __init__(self, points: list[dict], metric: str | None = None, mode: str | None = None):
        super().__init__(metric=metric, mode=mode)
        self.points, self.next = list(points), 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return True

    def suggest(self, trial_id: str):
        if self.next >= len(self.points):
            return Searcher.FINISHED
        self.next += 1
        return {"point": self.points[self.next - 1]}

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        pass

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "w") as f:
            json.dump({"points": self.points, "next": self.next}, f)

    def restore(self, checkpoint_path: str):
        with open(checkpoint_path) as f:
            state = json.load(f)
        self.points, self.next = state["points"], state["next"]
