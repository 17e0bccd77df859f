"""Nothing lost: a driver killed with SIGKILL mid-search resumes without re-running finished trials or stored
members. Signals (SIGTERM, Ctrl-C) and a local search's loopback-only listeners: tests/test_signals.py; trials
spread over a two-node cluster: tests/test_user.py and tests/test_store_cluster.py."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tuneall.rundir import journal

from procs import cli as _cli, kill_tree as _kill_group, run_to_end, wait_for as _wait  # shared

SPACE = """
name: kill
families: [cnn3]
width: [0.25, 0.5]
k: [1, 2, 3]
batch_size: 32
"""


def _records(store) -> dict[str, int]:
    """Stored records by name and mtime; a writer SIGKILLed mid-write leaves only a hidden temporary file."""
    from tuneall.store.records import MemberStore

    return {p.name: p.stat().st_mtime_ns for p in MemberStore(store).record_files()}


@pytest.mark.slow
def test_sigkill_then_resume_loses_and_reruns_nothing(tmp_path):
    """A grid search on the member store, its whole process group SIGKILLed after two trials, resumed by the same
    command plus --resume: no finished trial or stored member is lost, none is trained again, and every member of
    the grid is trained at most once."""
    from tuneall.store.records import STORE_DIR

    (tmp_path / "kill.yaml").write_text(SPACE)
    out = tmp_path / "results" / "k"
    store = out / STORE_DIR
    args = ["search", "--dataset", "digits", "--budget", "3e6", "--space", "kill.yaml", "--searcher", "grid",
            "--seeds", "1", "--min-steps", "20", "--name", "k", "--verbose", "0", "--num-cpus", "1", "-y"]
    proc = _cli(args, tmp_path)
    try:
        _wait(lambda: len(journal.read(out)) >= 2, 240, "two finished trials")
    finally:
        _kill_group(proc.pid)
        proc.wait(timeout=30)
    before = journal.read(out)
    stored = _records(store)
    assert len(before) >= 2 and len(stored) >= 2
    # The killed driver left no summary that looks complete.
    assert json.loads((out / "tuneall.json").read_text())["state"] == "running"
    assert not (out / "summary.md").exists()

    run_to_end([*args, "--resume"], tmp_path)
    after = journal.read(out)
    ids = [r["trial_id"] for r in after]
    assert len(after) == 6 and len(set(ids)) == 6
    assert after[: len(before)] == before  # finished trials kept as they were, never re-run
    trials = pd.read_csv(out / "trials.csv")
    assert sorted(set(trials["trial_id"])) == sorted(ids)
    assert json.loads((out / "tuneall.json").read_text())["state"] == "complete"
    assert "INCOMPLETE" not in (out / "summary.md").read_text()
    files = _records(store)
    # What each trial trained and read, and which records existed when: a failure here names its case.
    why = (f"at the kill {sorted(stored)}, at the end {sorted(files)}; trials (width, k, status, trained, reused, "
           "error): " + str([(r["config"]["point"]["width"], r["config"]["point"]["k"], r["metrics"].get("status"),
                              r["metrics"].get("members_trained"), r["metrics"].get("members_reused"),
                              (r.get("error") or "")[:300]) for r in after]))
    assert all(r.get("error") is None for r in after), why + (tmp_path / "driver.log").read_text()[-3000:]
    assert len(files) == 2 * 3, why  # 2 widths x members 0..2 (k <= 3), one seed: one record each
    assert all(files[n] == t for n, t in stored.items()), why  # no stored member was trained (rewritten) again
    assert all("members_trained" in r["metrics"] for r in after), why  # the store's count, in every trial's row
    # Each member trained at most once over both runs, except one in flight at the kill (its record never written).
    assert sum(r["metrics"]["members_trained"] for r in after) <= 6 + 1


def test_trial_processes_do_not_print_the_systemexit_of_ray_sigterm(monkeypatch):
    """Ray's SIGTERM handler raises SystemExit; inside a weakref callback Python would print it as an unraisable
    exception at the end of a search. Only that is silenced: other unraisable errors still reach the hook."""
    import sys

    from tuneall.runner import quiet_sigterm_exit

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    quiet_sigterm_exit()
    quiet_sigterm_exit()  # idempotent: a reused trial process calls it once per trial

    class Dying:
        def __init__(self, exc):
            self.exc = exc

        def __del__(self):
            raise self.exc

    Dying(SystemExit(1))
    Dying(ValueError("a real error"))
    assert seen == [ValueError]
