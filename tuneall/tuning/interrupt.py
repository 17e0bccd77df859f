"""What a search leaves when a signal stops it (:mod:`tuneall.runner.signals`): state ``interrupted``, the report of
the trials that finished, and one line saying how to continue.

Finished trials are already in the journal (and finished halving rung trials in ``halving.jsonl``) the moment the
driver learns of them; trials that were running are not recorded, so ``tuneall resume`` runs them again.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

from tuneall.rundir import journal
from tuneall.rundir import results as R
from tuneall.runner import signals


@contextlib.contextmanager
def stops_cleanly(out: Path):
    """Around a search's run in ``out`` (the directory lock held): a KeyboardInterrupt or stop signal marks the
    directory ``interrupted``, writes the report of what finished, and re-raises as :class:`signals.Interrupted`
    whose note says what to do next."""
    try:
        yield
        signals.raise_if_pending()  # a stop whose first raise was swallowed on the way still stops the run
    except KeyboardInterrupt as e:
        signals.acknowledge()
        signum = getattr(e, "signum", None) or signals.received() or signal.SIGINT
        with signals.cleaning_up():
            note = _leave_interrupted(Path(out))
        stop = signals.Interrupted(signum, note)
        if signals._installed:  # the CLI: say it now, before Ray's shutdown (a group signal may have killed its GCS)
            print(f"tuneall: {signals.describe(stop)}", file=sys.stderr, flush=True)
            stop.printed = True
        raise stop from None


def _leave_interrupted(out: Path) -> str:
    try:
        meta = R.read_meta(out)
    except Exception:  # noqa: BLE001 - a damaged file is reported by the resume
        meta = {}
    if not meta:  # stopped before provenance was written: the lock's owner removes an otherwise empty directory
        return f"nothing was written; run the same command again to start {out.name}"
    if meta.get("state") != "complete":
        R.write_meta(out, meta, "interrupted")  # first: a kill during the report still leaves it resumable
    n = len({r["trial_id"] for r in journal.read_checked(out).records}) if (out / R.JOURNAL).exists() else 0
    if n and meta.get("state") != "complete":
        try:
            from tuneall.reporting.search_report import build_report

            build_report(out, state="interrupted")
            R.write_meta(out, {**meta, "trials_finished": n}, "interrupted")  # what the report's table holds
        except Exception as e:  # noqa: BLE001 - the report is a convenience; the journal is the record
            print(f"tuneall: warning: no report of the finished trials ({type(e).__name__}: {e})", file=sys.stderr)
    if meta.get("state") == "complete":
        return f"the search had finished ({out})"
    from tuneall.tuning.halving import read_log

    rungs = len(read_log(out))
    kept = f"{n} finished trial(s)" + (f" and {rungs} finished halving rung trial(s)" if rungs else "")
    return f"{kept} kept; continue with: tuneall resume {out}"


__all__ = ["stops_cleanly"]
