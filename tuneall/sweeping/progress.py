"""What a sweep prints: one tuneall line per finished trial (Ray's tables only at a higher ``--verbose``) and a
final answer line per combination rule at the largest budget (imported lazily: the callback pulls in ray.tune)."""

from __future__ import annotations

import json
import time
from typing import Callable

from tuneall.core.progress import allocation_label, fmt_duration, varying_axes


class SweepLines:
    """``tuneall: sweep trial 3/12 cnn3 w=1 k=2: 4 budget(s), 12,000 member-steps, 35 s | 3/12 done, 9 left, ETA``"""

    def __init__(self, total: int, out: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, points=()):
        self.total, self.done, self.clock = total, 0, clock
        self.axes = varying_axes(points)  # the recipe fields the sweep's points vary (lr, ...): named in every line
        self.start = clock()
        self.out = out or (lambda line: print(line, flush=True))

    @classmethod
    def of(cls, jobs: list[dict]) -> "SweepLines":
        """The lines of a sweep of ``jobs`` (each with its ``point``)."""
        return cls(len(jobs), points=[j.get("point", {}) for j in jobs])

    def line(self, job: dict, metrics: dict, error: str | None = None) -> str:
        self.done += 1
        label = allocation_label(job.get("point", {}), self.axes)
        if error:
            body = f"FAILED ({error})"
        else:
            cells = json.loads(metrics.get("cells_json") or "[]")
            accs = [c.get("ensemble_acc") for c in cells if isinstance(c.get("ensemble_acc"), (int, float))]
            body = (f"{len(job.get('budgets', []))} budget(s), {int(metrics.get('member_steps') or 0):,} member-steps"
                    f" trained in {fmt_duration(float(metrics.get('train_time_s') or 0))}"
                    + (f", test accuracy {min(accs):.4f}-{max(accs):.4f} over its cells" if accs else ""))
        left = self.total - self.done
        eta = (self.clock() - self.start) / self.done * left
        tail = f"{self.done}/{self.total} done, {left} left" + (f", ETA {fmt_duration(eta)}" if left else "")
        return f"tuneall: sweep trial {self.done}/{self.total} {label}: {body} | {tail}"

    def finished(self, job: dict, metrics: dict, error: str | None = None) -> None:
        self.out(self.line(job, metrics, error))


def callback(lines: SweepLines):
    """A Ray Tune callback that prints :class:`SweepLines` as trials finish."""
    from ray.tune import Callback

    class _Lines(Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            if "cells_json" in (trial.last_result or {}):
                lines.finished((trial.config or {}).get("job", {}), trial.last_result)

        def on_trial_error(self, iteration, trials, trial, **info):
            msg = str(getattr(trial, "error_msg", None) or "trial failed").strip().splitlines()[-1][:300]
            lines.finished((trial.config or {}).get("job", {}), {}, error=msg)

    return _Lines()


def answer_lines(tables: dict, unit: str) -> list[str]:
    """The sweep's answer: per combination rule, the best allocation at the largest budget (on test, as the sweep's
    report reads it), and the best single network there."""
    ok = tables.get("optimal_k")
    if ok is None or ok.empty:
        return ["tuneall: no answer: no cell trained successfully (see cells.csv and jobs.csv)"]
    from tuneall.core.config import RECIPE_FIELDS
    from tuneall.core.progress import axes_text

    # The other fields the sweep varies (optimal_k keeps them: tuneall.reporting.analysis.varied_fields).
    named = [c for c in ("family", "depth", "design") if c in ok]
    recipe = [c for c in RECIPE_FIELDS if c in ok]
    out = []
    for rule, g in ok.groupby("rule", sort=False):
        top = g.loc[g["budget"].idxmax()]
        single = top.get("best_single")
        more = [f"{c} {top[c]:g}" if isinstance(top[c], float) else f"{c} {top[c]}" for c in named
                if top[c] == top[c] and top[c] not in ("", None)] + axes_text(top, recipe)
        out.append(f"tuneall: answer ({rule} rule) at the largest budget C = {top['budget']:.3g} {unit}: k = "
                   f"{int(top['best_k'])}, width {float(top['best_width']):g}" + "".join(f", {m}" for m in more)
                   + f" (test accuracy {top['mean']:.4f}"
                   + (f"; best single network {single:.4f}" if single == single and single is not None else "")
                   + "); per budget: optimal_k.csv")
    return out


__all__ = ["SweepLines", "callback", "answer_lines"]
