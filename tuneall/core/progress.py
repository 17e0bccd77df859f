"""What a researcher sees while a search runs, and the one question it may ask before it starts (torch- and Ray-free).

- :class:`SearchProgress`: the driver's line per finished trial: the allocation, the objective(s) as mean ± std over
  seeds, the best so far (respecting min / max), trials done and left, and the search's ETA from measured speed.
- :class:`TrialBeat`: the trial-level heartbeat printed inside a trial process: progress over *all* of a trial's
  member-steps (k members x seeds x steps), not one member's, with the trial's ETA. Members' heartbeats
  (:class:`tuneall.training.member.Heartbeat`) forward to the active one (:func:`trial_heartbeat`).
- :func:`confirm`: ask before a long search starts, only where a person can answer (a TTY, not under CI).
"""

from __future__ import annotations

import math
import os
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO


YEAR_S = 365.25 * 86400


def fmt_duration(s: float, minute_digits: int = 1) -> str:
    """A short human duration, the one formatter of tuneall's times: 42 s, 7.5 min, 3.2 h, 2.1 days, 3.1e+03 years.
    ``minute_digits``: decimals of minutes (live ETAs 1; the coarser pre-run estimate 0)."""
    if not math.isfinite(s):
        return "?"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.{minute_digits}f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    if s < 2 * YEAR_S:
        return f"{s / 86400:.1f} days"
    return f"{s / YEAR_S:.3g} years"


def std_name(metric: str) -> str | None:
    """The spread over seeds that goes with a ``<name>_mean`` metric (``val_`` prefixed ones too), else None."""
    return metric[:-5] + "_std" if metric.endswith("_mean") else None


def _num(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


def varying_axes(rows) -> tuple[str, ...]:
    """The recipe fields (lr, batch size, ...) on which ``rows`` (a DataFrame, or dicts) differ: an allocation's label
    names them, so two allocations of a search never print alike."""
    from tuneall.core.config import RECIPE_FIELDS

    if hasattr(rows, "columns"):  # a DataFrame (pandas is the caller's, never imported here)
        return tuple(f for f in RECIPE_FIELDS if f in rows.columns and rows[f].dropna().nunique() > 1)
    rows = list(rows)
    return tuple(f for f in RECIPE_FIELDS
                 if len({str(r.get(f)) for r in rows if r.get(f) is not None and r.get(f) == r.get(f)}) > 1)


def axes_text(point, axes) -> list[str]:
    """``["lr=0.05", "batch_size=128"]``: ``point``'s values on ``axes`` (:func:`varying_axes`), in that order."""
    out = []
    for f in axes:
        v = point.get(f)
        if v is not None and v == v:
            out.append(f"{f}={v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{f}={v}")
    return out


def allocation_label(point: dict, axes=()) -> str:
    """``cnn3 w=0.5 d=3 k=4`` (+ data fraction and design where the point has them, and its values on ``axes``:
    the recipe fields the search varies, :func:`varying_axes`)."""
    parts = [str(point.get("family", "?"))]
    if point.get("width") is not None:
        parts.append(f"w={float(point['width']):g}")
    if point.get("depth") is not None and point.get("depth") == point.get("depth"):
        parts.append(f"d={int(point['depth'])}")
    if point.get("k") is not None:
        parts.append(f"k={int(point['k'])}")
    if point.get("data_fraction") not in (None, 1, 1.0):
        parts.append(f"data={float(point['data_fraction']):g}")
    if point.get("design"):
        parts.append(str(point["design"]))
    return " ".join(parts + axes_text(point, axes))


class SearchProgress:
    """Formats (and prints) one line per finished trial of a search, from the driver.

    ``objectives``: the run's (metric, mode) pairs, the first one ranks "best so far". ``total``: trials the search
    will run in all; ``done``: those already finished before this session (a resume), which do not count towards
    the measured speed. The ETA is (time since start / trials finished in this session) x trials left: measured,
    so it already includes concurrency and the gaps between trials.
    """

    def __init__(self, total: int, objectives, done: int = 0, out: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, axes=()):
        self.total, self.objectives = total, tuple(tuple(o) for o in objectives)
        self.axes = tuple(axes)  # the recipe fields the space varies: named in every line
        self.done, self.done_before, self.clock = done, done, clock
        self.start = clock()
        self.best: tuple | None = None  # (rule's score, label, objective, suggestion order or None)
        self.out = out or (lambda line: print(line, flush=True))

    def _better(self, value: float, order: int | None) -> bool:
        """Whether a score beats the best so far by the answer rule: a higher (lower) score, or an exact tie and an
        earlier suggestion (:func:`tuneall.reporting.choice.order`), not whichever finished first."""
        if self.best is None:
            return True
        if value == self.best[0]:
            return order is not None and self.best[3] is not None and order < self.best[3]
        return value > self.best[0] if self.objectives[0][1] == "max" else value < self.best[0]

    def eta_s(self) -> float:
        ran = self.done - self.done_before
        left = max(0, self.total - self.done)
        if left == 0:
            return 0.0
        return (self.clock() - self.start) / ran * left if ran > 0 else float("nan")

    def trial_line(self, point: dict, metrics: dict, error: str | None = None, order: int | None = None) -> str:
        """Record a finished trial and return its line (``order``: its suggestion order, which breaks exact ties)."""
        self.done += 1
        label = allocation_label({**point, **{k: metrics[k] for k in ("depth", "k") if metrics.get(k) is not None}},
                                 self.axes)
        status = "failed" if error else metrics.get("status", "ok")
        if error:
            body = f"FAILED: {error.strip().splitlines()[-1][:160] if error.strip() else 'no result'}"
        elif status == "infeasible":
            body = f"infeasible: {str(metrics.get('reason', ''))[:160]}"
        else:
            shown = []
            for name, _ in self.objectives:
                v = metrics.get(name)
                sd = metrics.get(std_name(name)) if std_name(name) else None
                twin = metrics.get(name[4:]) if name.startswith("val_") else None  # test beside validation
                shown.append(f"{name} {_num(v)}" + (f" ± {_num(sd)}" if isinstance(sd, (int, float)) else "")
                             + (f" (test {_num(twin)})" if isinstance(twin, (int, float)) else ""))
            body = ", ".join(shown)
            if metrics.get("steps") is not None:
                body = f"T={int(metrics['steps']):,}: " + body
            if status != "ok":
                body += f" [{status}]"
            if metrics.get("repeat_of"):
                body += f" [repeat of {metrics['repeat_of']}]"
            from tuneall.core.choice import score_metrics

            first, _ = self.objectives[0]
            v = metrics.get(first)
            key = score_metrics(metrics, self.objectives)  # the answer rule's order (what Ray's "best" reads)
            if status == "ok" and isinstance(v, (int, float)) and math.isfinite(v) and self._better(key, order):
                self.best = (key, label, float(v), order)
        best = f"best {_num(self.best[2])} ({self.best[1]})" if self.best else "best: none yet"
        left = max(0, self.total - self.done)
        eta = self.eta_s()
        tail = f"{self.done}/{self.total} done, {left} left" + (f", ETA {fmt_duration(eta)}" if left else "")
        return f"tuneall: trial {self.done}/{self.total} {label}: {body} | {best} | {tail}"

    def trial_finished(self, point: dict, metrics: dict, error: str | None = None, order: int | None = None) -> None:
        self.out(self.trial_line(point, metrics, error, order))


class TrialBeat:
    """Progress over all of a trial's member-steps, printed at most every ``every_s`` seconds.

    Members report through :meth:`member`, which returns the callable a member's heartbeat calls with its step; a
    member that trains ``members`` networks at once (vectorised) counts ``members`` member-steps per step. A new
    member starting means the previous ones are done (members of a trial train one after another or in lockstep).
    """

    def __init__(self, label: str, total_member_steps: int, every_s: float,
                 out: Callable[[str], None] | None = None, clock: Callable[[], float] = time.perf_counter,
                 seeds: list | None = None):
        self.label, self.total, self.every_s, self.clock = label, max(1, int(total_member_steps)), every_s, clock
        self.start = self.last = clock()
        self.finished = 0  # member-steps of members that are done
        self.current = (0, 1, 0)  # (steps, members, step) of the member training now
        self.started = 0
        # seeds[r][j]: member j of repeat r (the plan's seeds), to name a member in the user's terms
        self.where = {int(s): (r, j) for r, rep in enumerate(seeds or []) for j, s in enumerate(rep)}
        self.k, self.repeats = (len(seeds[0]), len(seeds)) if seeds else (None, None)
        self.seed: int | None = None
        self.out = out or (lambda line: print(line, flush=True))

    def member(self, steps: int, members: int = 1, seed: int | None = None) -> Callable[[int], None]:
        s, m, _ = self.current
        self.finished += s * m if self.started else 0
        self.current = (int(steps), int(members), 0)
        self.started += members
        self.seed = seed

        def beat(step: int) -> None:
            self.current = (self.current[0], self.current[1], step)
            self.maybe_print()

        return beat

    @property
    def done(self) -> int:
        return min(self.total, self.finished + self.current[1] * self.current[2])

    def line(self) -> str:
        now = self.clock()
        done, elapsed = self.done, now - self.start
        eta = elapsed / done * (self.total - done) if done else float("nan")
        return (f"tuneall: trial {self.label}: {done:,}/{self.total:,} member-steps ({done / self.total:.0%}), "
                f"{self.running()}, {fmt_duration(elapsed)} in, trial ETA {fmt_duration(eta)}")

    def running(self) -> str:
        """The member training now in the user's terms: "member 2 of 4, seed 1 of 3" (seed: the repeat, as
        ``--seeds 3`` counts them)."""
        members = self.current[1]
        if self.seed is None or int(self.seed) not in self.where:  # no plan seeds: count members started
            return f"member {self.started} running" if members == 1 else \
                f"members {self.started - members + 1}-{self.started} running"
        r, j = self.where[int(self.seed)]
        who = f"member {j + 1} of {self.k}" if members == 1 else f"members {j + 1}-{j + members} of {self.k}"
        return f"{who}, seed {r + 1} of {self.repeats}"

    def maybe_print(self) -> None:
        # No line once every member-step is done: it would arrive after the driver's "done" line, stale.
        if self.every_s > 0 and self.done < self.total and self.clock() - self.last >= self.every_s:
            self.last = self.clock()
            self.out(self.line())


_ACTIVE: list[TrialBeat] = []


def active_trial() -> TrialBeat | None:
    """The trial heartbeat of this process, if a trial is running under one."""
    return _ACTIVE[-1] if _ACTIVE else None


def heartbeat_seconds(default: float) -> float:
    """Seconds between heartbeat lines: ``$TUNEALL_HEARTBEAT_S`` if set (demos, tests), else ``default``."""
    try:
        return float(os.environ["TUNEALL_HEARTBEAT_S"])
    except (KeyError, ValueError):
        return default


@contextmanager
def trial_heartbeat(label: str, total_member_steps: int, every_s: float,
                    seeds: list | None = None) -> Iterator[TrialBeat | None]:
    """Members trained inside this block report to one trial-level heartbeat (none when ``every_s`` <= 0);
    ``seeds``: the plan's seeds per repeat, so a line names "member j of k (seed s), repeat r of R"."""
    if every_s <= 0:
        yield None
        return
    beat = TrialBeat(label, total_member_steps, heartbeat_seconds(every_s), seeds=seeds)
    _ACTIVE.append(beat)
    try:
        yield beat
    finally:
        _ACTIVE.remove(beat)


def ray_verbosity(verbose: int) -> int:
    """Ray Tune's ``verbose`` for tuneall's: 0 and 1 print only tuneall's own lines (Ray silent), 2 adds Ray's table
    of trials, 3 also Ray's result of every trial."""
    return max(0, min(3, int(verbose) - 1))


CONFIRM_ABOVE_S = 3600.0  # a search estimated to take longer than this asks before it starts (interactive only)


def interactive(stdin: TextIO | None = None) -> bool:
    """Whether a person can answer a question here: stdin is a terminal and no CI is set."""
    stdin = stdin or sys.stdin
    if os.environ.get("CI") or os.environ.get("TUNEALL_NO_CONFIRM"):
        return False
    try:
        return stdin.isatty()
    except (AttributeError, ValueError):
        return False


def confirm(question: str, stdin: TextIO | None = None, out: TextIO | None = None) -> bool:
    """Ask a yes/no question (default no). Only called where :func:`interactive` is true."""
    stdin, out = stdin or sys.stdin, out or sys.stdout
    out.write(f"{question} [y/N] ")
    out.flush()
    answer = stdin.readline().strip().lower()
    return answer in ("y", "yes")


__all__ = ["ray_verbosity", "SearchProgress", "TrialBeat", "trial_heartbeat", "active_trial", "heartbeat_seconds",
           "confirm", "interactive", "fmt_duration", "allocation_label", "varying_axes", "axes_text", "std_name",
           "CONFIRM_ABOVE_S"]
