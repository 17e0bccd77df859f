"""Stopping on a signal: Ctrl-C (SIGINT) and a job scheduler's SIGTERM end a run the same way.

The first signal raises :class:`Interrupted` (a ``KeyboardInterrupt``) in the driver's main thread wherever it is,
including inside Ray Tune's loop (Tune's own graceful-stop handler is switched off: it swallowed a Ctrl-C that came
before its loop started, ended a halving rung with trials that had no config, and printed its own
``Tuner.restore(...)`` line). The run then leaves its directory in state ``interrupted`` (finished trials are in
the journal; trials that were running are run again by ``tuneall resume``), and the CLI prints one line and exits
128 + the signal's number (130 for SIGINT, 143 for SIGTERM). While that clean-up runs, a repeated signal is noted,
not raised (a process-group signal may arrive twice); a third one stops at once.

Torch-free and Ray-free. Installed by the CLI before anything else, and again after ``ray.init`` (Ray's core worker
installs a native SIGTERM handler that dumps a stack trace and aborts).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []
_installed: list[bool] = []
_cleaning: list[bool] = []
_pending: list[int] = []  # a stop signal whose Interrupted has not yet reached a handler that acts on it
_deferring: list[bool] = []  # inside Ray Tune's loop: stops are raised at its next step (deferred)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (``signum``); ``note`` says what it left and how to continue."""

    def __init__(self, signum: int = signal.SIGINT, note: str = ""):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.note = int(signum), note


def describe(exc: BaseException) -> str:
    """The one line the CLI prints for a stop: which signal, and what the run left (its ``note``)."""
    signum = getattr(exc, "signum", None) or received() or signal.SIGINT
    note = getattr(exc, "note", "")
    return f"stopped by {signal.Signals(signum).name}" + (f"; {note}" if note else "")


def received() -> int | None:
    """The first stop signal this process received (None: none)."""
    return _received[0] if _received else None


def exit_code(exc: BaseException | None = None) -> int:
    """128 + the signal's number, as a shell reports a process a signal ended (130 when none was recorded)."""
    return 128 + int(getattr(exc, "signum", None) or received() or signal.SIGINT)


def _handler(signum, frame):
    _received.append(signum)
    if _cleaning and len(_received) < 3:
        return  # the run is writing what it leaves behind: let it finish (a third signal stops at once)
    _pending[:] = [signum]
    if _deferring and len(_received) < 3:
        return  # raised at the loop's next safe point (a third signal stops at once)
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred():
    """Inside Ray Tune's loop a stop is raised at the next step (a Tune callback calls :func:`raise_if_pending`),
    not wherever the main thread happens to be: raised inside Optuna's journal lock, it turned into that lock's
    ``FileNotFoundError`` and a traceback; raised inside code that swallows it (a ``__del__``, a broad ``except``),
    it was lost and the search ran to the end. A stop still pending when the body returns is raised there."""
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()
    raise_if_pending()


def raise_if_pending() -> None:
    """Raise a stop that was received but has not yet reached the code that acts on it (deferred, or its raise
    swallowed on the way). Called at every step of Ray Tune's loop and where a run ends; a no-op once acknowledged."""
    if _pending and not _cleaning:
        raise Interrupted(_pending[0])


def acknowledge() -> None:
    """The stop reached the code that acts on it (a run's clean-up, the CLI): no need to raise it again."""
    _pending.clear()


@contextlib.contextmanager
def cleaning_up():
    """While the body writes an interrupted run's state, repeated signals are noted, not raised."""
    _cleaning.append(True)
    try:
        yield
    finally:
        _cleaning.pop()


def install() -> None:
    """Route SIGINT and SIGTERM to :func:`_handler` (main thread only). SIGINT is honoured even where the shell
    started the process with it ignored (a background job): someone sending it means stop."""
    if threading.current_thread() is not threading.main_thread():
        return
    if not _installed:
        _installed.append(True)
    # Ray Tune's SIGINT handler would replace ours while its loop runs (and restore it only after a first Ctrl-C).
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    for s in STOP_SIGNALS:
        signal.signal(s, _handler)


def reinstall() -> None:
    """Install again where :func:`install` was called before (after ``ray.init`` replaced the SIGTERM handler);
    a Python API caller's own handlers are left alone."""
    if _installed:
        install()


def reset() -> None:
    """Forget received signals (tests; a new run in the same process)."""
    _received.clear()
    _pending.clear()


__all__ = ["Interrupted", "describe", "received", "exit_code", "install", "reinstall", "reset", "cleaning_up",
           "raise_if_pending", "acknowledge", "deferred", "STOP_SIGNALS"]
