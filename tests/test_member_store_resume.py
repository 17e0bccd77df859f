"""A grid search using the member store, SIGKILLed mid-run and resumed: no finished trial or stored member is lost,
no stored member is trained again, and every member of the grid is trained at most once."""

from __future__ import annotations

import json

import pytest

from tuneall.rundir import journal
from tuneall.store.records import STORE_DIR

from procs import run_to_end
from test_reliability import SPACE, _cli, _kill_group, _wait


def _records(store) -> dict[str, int]:
    """Stored records by name and mtime; a writer SIGKILLed mid-write leaves only a hidden temporary file."""
    from tuneall.store.records import MemberStore

    return {p.name: p.stat().st_mtime_ns for p in MemberStore(store).record_files()}


@pytest.mark.slow
def test_sigkill_then_resume_keeps_stored_members(tmp_path):
    (tmp_path / "kill.yaml").write_text(SPACE)
    out = tmp_path / "results" / "m"
    store = out / STORE_DIR
    args = ["search", "--dataset", "digits", "--budget", "3e6", "--space", "kill.yaml", "--searcher", "grid",
            "--seeds", "1", "--min-steps", "20", "--name", "m", "--verbose", "0", "--num-cpus", "1", "-y"]
    proc = _cli(args, tmp_path)
    try:
        _wait(lambda: len(journal.read(out)) >= 1 and len(_records(store)) >= 2, 240,
              "a finished trial and stored members")
    finally:
        _kill_group(proc.pid)
        proc.wait(timeout=30)
    before = journal.read(out)
    stored = _records(store)
    run_to_end(["resume", str(out), "--verbose", "0"], tmp_path)
    after = journal.read(out)
    assert len(after) == 6 and after[: len(before)] == before  # finished trials kept, never re-run
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
    trained = sum(r["metrics"]["members_trained"] for r in after)
    # Each member trained at most once over both runs, except one in flight at the kill (its record never written).
    assert trained <= 6 + 1
    assert json.loads((out / "tuneall.json").read_text())["state"] == "complete"


@pytest.mark.slow
def test_sigkill_during_halving_then_resume_keeps_every_finished_rung_trial(tmp_path):
    """Killed between rungs: the resume runs no recorded rung trial again, continues from the stored members and
    completes with its full trials."""
    from tuneall.tuning.halving import HALVING_LOG, RUNGS, point_id, read_log

    (tmp_path / "kill.yaml").write_text(SPACE)
    out = tmp_path / "results" / "h"
    args = ["search", "--dataset", "digits", "--budget", "3e6", "--space", "kill.yaml", "--searcher", "halving",
            "--seeds", "2", "--min-steps", "20", "--name", "h", "--verbose", "0", "--num-cpus", "1", "-y"]
    proc = _cli(args, tmp_path)
    try:
        _wait(lambda: len(read_log(out)) >= 3, 240, "three finished rung trials")
    finally:
        _kill_group(proc.pid)
        proc.wait(timeout=30)
    before = (out / HALVING_LOG).read_text().splitlines()
    run_to_end(["resume", str(out), "--verbose", "0"], tmp_path)
    after = read_log(out)
    assert (out / HALVING_LOG).read_text().splitlines()[: len(before)] == before  # kept as written
    keys = [(r["rung"], point_id(r["point"])) for r in after]
    assert len(keys) == len(set(keys))  # no rung trial ran twice
    assert {r["rung"] for r in after} == set(range(len(RUNGS))) and len([k for k in keys if k[0] == 0]) == 6
    full = journal.read(out)
    assert full and all(r["metrics"]["status"] == "ok" for r in full)
    assert json.loads((out / "tuneall.json").read_text())["state"] == "complete"
