"""Signals: SIGTERM (a job scheduler) and SIGINT (Ctrl-C) stop a search cleanly at any moment: one tuneall line,
state "interrupted", exit 143 / 130, and a resume that loses nothing (finished trials and finished halving rung trials
kept, nothing run twice). Fast unit tests first; the end-to-end ones (real Ray Tune searches) are marked slow."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from tuneall.rundir import journal
from tuneall.rundir import results as R
from tuneall.runner import signals
from tuneall.tuning.halving import RUNGS, read_log

from procs import WILDCARD_OK, cli as _cli, descendants as _descendants, kill_tree as _kill_group, listeners, \
    wait_for as _wait


@pytest.fixture(autouse=True)
def _restore_handlers():
    before = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    yield
    for s, h in before.items():
        signal.signal(s, h)
    signals.reset()
    signals._installed.clear()
    if env is None:
        os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_raises_interrupted_with_its_exit_code(sig, code):
    signals.install()
    with pytest.raises(signals.Interrupted) as e:
        os.kill(os.getpid(), sig)
        time.sleep(1)  # the handler runs at the next bytecode boundary
    assert e.value.signum == sig and signals.exit_code(e.value) == code
    assert signals.describe(e.value).startswith(f"stopped by {signal.Signals(sig).name}")
    assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1"  # Ray Tune's own SIGINT handler stays out


def test_repeated_signals_during_clean_up_are_noted_not_raised():
    signals.install()
    with signals.cleaning_up():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        finished = True  # not interrupted by the second signal
    assert finished and signals.received() == signal.SIGTERM


def test_a_stop_swallowed_on_the_way_is_raised_again_until_acknowledged(tmp_path):
    """A handler's raise lost inside code that swallows it (a __del__, a broad except) still stops the run: Tune's
    loop and the end of a search's body raise it again; once acted on it is not raised twice."""
    from tuneall.runner.trials import _stop_on_signal
    from tuneall.tuning.interrupt import stops_cleanly

    signals.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    except KeyboardInterrupt:
        pass  # swallowed, as a library might
    with pytest.raises(signals.Interrupted) as e:
        _stop_on_signal().on_step_begin(iteration=0, trials=[])
    assert e.value.signum == signal.SIGINT
    d = _running_search(tmp_path, 2)
    with pytest.raises(signals.Interrupted) as e:
        with stops_cleanly(d):
            pass  # the body ran to its end: the pending stop is raised there and acted on
    assert "2 finished trial(s) kept" in e.value.note
    assert json.loads((d / R.META).read_text())["state"] == "interrupted"
    signals.raise_if_pending()  # acknowledged: nothing more


def test_inside_tunes_loop_a_stop_waits_for_the_next_step():
    """Deferred (Ray Tune's loop): the handler returns, the body's code is not cut in two, and the stop is raised
    at the next step's callback or where the body ends; a third signal still stops at once."""
    from tuneall.runner.trials import _stop_on_signal

    signals.install()
    with pytest.raises(signals.Interrupted):
        with signals.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.3)
            finished = True  # not interrupted mid-way
        assert False, "not reached"
    assert finished
    signals.reset()
    with signals.deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        with pytest.raises(signals.Interrupted) as e:
            _stop_on_signal().on_step_begin(iteration=1, trials=[])
        signals.acknowledge()
    assert e.value.signum == signal.SIGINT
    signals.reset()
    with pytest.raises(signals.Interrupted):
        with signals.deferred():
            for _ in range(3):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.3)


def test_reinstall_replaces_a_foreign_sigterm_handler_only_where_installed():
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signals.reinstall()  # a Python API caller who never installed keeps their handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    signals.install()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # what ray.init does with its native handler
    signals.reinstall()
    assert signal.getsignal(signal.SIGTERM) is signals._handler


def _running_search(tmp_path, n: int) -> Path:
    from test_results_dir import record

    d = tmp_path / "s"
    d.mkdir()
    for i in range(n):
        journal.append(d, record(i))
    R.write_meta(d, {"kind": "search", "config": {"objectives": [["ensemble_acc_mean", "max"]]}}, "running")
    return d


def test_stops_cleanly_leaves_the_directory_interrupted_with_its_report(tmp_path):
    from tuneall.tuning.interrupt import stops_cleanly

    d = _running_search(tmp_path, 3)
    with pytest.raises(signals.Interrupted) as e:
        with stops_cleanly(d):
            raise signals.Interrupted(signal.SIGTERM)
    assert e.value.signum == signal.SIGTERM
    assert f"3 finished trial(s) kept; continue with: tuneall resume {d}" in e.value.note
    meta = json.loads((d / R.META).read_text())
    assert meta["state"] == "interrupted" and meta["trials_finished"] == 3
    assert "INCOMPLETE" in (d / R.SUMMARY).read_text()


def test_stopped_before_provenance_says_nothing_was_written(tmp_path):
    from tuneall.tuning.interrupt import stops_cleanly

    (tmp_path / "s").mkdir()
    with pytest.raises(signals.Interrupted) as e:
        with stops_cleanly(tmp_path / "s"):
            raise KeyboardInterrupt
    assert e.value.signum == signal.SIGINT and "nothing was written" in e.value.note


def test_a_trial_that_the_stop_signal_killed_is_not_journalled_as_failed(tmp_path):
    from tuneall.tuning._callbacks import JournalCallback

    class Trial:
        trial_id, config, error_msg, last_result = "t1", {"point": {"k": 1}}, "SystemExit: SIGTERM", {}

    cb = JournalCallback(str(tmp_path))
    signals._received.append(signal.SIGTERM)
    cb.on_trial_error(0, [], Trial())
    assert journal.read(tmp_path) == []  # a resume runs it again
    signals.reset()
    cb.on_trial_error(0, [], Trial())
    assert [r["error"] for r in journal.read(tmp_path)] == ["SystemExit: SIGTERM"]


def test_a_stale_optuna_journal_lock_is_broken_by_the_directory_owner(tmp_path):
    from tuneall.tuning.driver import SearchConfig
    from tuneall.tuning.study import study_storage
    from tuneall.api import make_space
    from tuneall.core.budget import Budget

    cfg = SearchConfig(budget=Budget(3e6), space=make_space("paper"), name="s", storage_path=str(tmp_path))
    out = tmp_path / "s"
    out.mkdir()
    lock = out / (R.OPTUNA_JOURNAL + ".lock")
    os.symlink(out / R.OPTUNA_JOURNAL, lock)  # what a SIGKILLed driver leaves (Optuna's symlink lock)
    t0 = time.monotonic()
    storage = study_storage(cfg, out)()
    import optuna

    optuna.create_study(storage=storage, study_name="s")
    assert time.monotonic() - t0 < 10  # Optuna's grace period is 30 s
    assert not lock.exists()


def test_rung_trials_logged_as_they_finish_are_not_logged_twice(tmp_path):
    from tuneall.tuning import halving as H

    points = [{"family": "cnn3", "width": w, "depth": 3, "k": 1} for w in (0.25, 0.5, 1.0)]

    def run_rung(fraction, pts):
        out = []
        for p in pts:
            m = {"status": "ok", "steps": [1, 2, 3], "full_steps": 9, "curve": [[0.2, 0.3, 0.4 + p["width"] / 10]]}
            H.append_log(tmp_path, {"rung": H.RUNGS.index(fraction), "fraction": fraction, "point": p,
                                    "metrics": m})  # as the rung's callback logs each finished trial
            out.append(m)
        return out

    H.select(points, run_rung, tmp_path, log=lambda *_: None)
    log = H.read_log(tmp_path)
    assert len(log) == len({(r["rung"], H.point_id(r["point"])) for r in log})


# --- end to end: a real search, signals, resumes -----------------------------------------------------------------

# 12 feasible points at 3e6 (widths 0.25 and 0.5, k 1-6): enough that the random chain's 10 trials are all distinct
# and that a run stopped after a new trial still has trials left to stop in.
SPACE = "name: sig\nfamilies: [cnn3]\nwidth: [0.25, 0.5]\nk: [1, 2, 3, 4, 5, 6]\nbatch_size: 32\n"
TRIALS = 10


def _finished(moment: str, out: Path) -> int:
    """What :func:`_ready` counts: rung trials logged (mid-rung) or trials journalled."""
    if moment == "mid-rung":
        return len(read_log(out))
    return len(journal.read(out)) if (out / R.JOURNAL).exists() else 0


def _ready(moment: str, log: str, out: Path, before: int) -> bool:
    """When the signal is sent: the run's search has begun; or a trial, or a halving rung trial, finished in it."""
    return "tuneall: searching" in log if moment == "start" else _finished(moment, out) > before


# Each chain is one search stopped again and again, each stop resumed by the next run (a resumed run is stopped as
# cleanly as a first one). Both signals mid-trial (the moment a group signal also reaches Ray's processes' parent),
# both targets, and the other moments once each: the handler is one code path for both signals, only the exit code
# differs (the unit tests above check both). A group SIGTERM reaches the driver only: a local Ray's processes sit in
# process groups of their own (runner/cluster.py, _own_process_groups), so they cannot die under the driver first.
CHAINS = {
    "random": [(signal.SIGINT, 130, "start", "group"), (signal.SIGTERM, 143, "mid-trial", "group"),
               (signal.SIGINT, 130, "mid-trial", "group"),
               (signal.SIGTERM, 143, "mid-trial", "driver")],  # a scheduler that signals the driver's pid only
    "halving": [(signal.SIGTERM, 143, "mid-rung", "group"),
                (signal.SIGKILL, -9, "mid-rung", "group"),  # no clean-up at all: the state stays "running"
                (signal.SIGINT, 130, "mid-rung", "driver")],
}


@pytest.mark.slow
@pytest.mark.parametrize("searcher", list(CHAINS))
def test_signals_stop_cleanly_and_each_resume_loses_nothing(tmp_path, searcher):
    (tmp_path / "sig.yaml").write_text(SPACE)
    out = tmp_path / "results" / "s"
    first = ["search", "--dataset", "digits", "--budget", "3e6", "--space", "sig.yaml", "--trials", str(TRIALS),
             "--seeds", "1", "--min-steps", "20", "--name", "s", "--searcher", searcher]
    driver_log = tmp_path / "driver.log"
    for n, (sig, code, moment, target) in enumerate(CHAINS[searcher]):
        case = f"stop {n + 1} ({signal.Signals(sig).name} {moment} to the {target})"
        offset = driver_log.stat().st_size if driver_log.exists() else 0
        run_log = lambda: driver_log.read_text()[offset:]  # noqa: E731  (this run's lines only)
        before_n = _finished(moment, out)
        before = {r["trial_id"]: r for r in journal.read(out)} if (out / R.JOURNAL).exists() else {}
        rungs_before = read_log(out)
        proc = _cli(first if n == 0 else ["resume", str(out)], tmp_path)
        try:
            _wait(lambda: _ready(moment, run_log(), out, before_n), 300, case)
            # The whole process group, as a terminal's Ctrl-C or a scheduler does, or the driver alone; SIGKILL
            # reaches every process the run started (Ray's too), as when its machine is lost.
            if sig == signal.SIGKILL:
                _kill_group(proc.pid)
            else:
                (os.killpg if target == "group" else os.kill)(proc.pid, sig)
            rc = proc.wait(timeout=120)
        finally:
            _kill_group(proc.pid)
        log = run_log()
        assert rc == code, (case, log[-3000:])
        if sig == signal.SIGKILL:  # nothing ran after the kill: what was written stays, as written
            assert "tuneall: stopped by" not in log and R.read_meta(out)["state"] == "running", case
            assert journal.read(out)[: len(before)] == list(before.values()), case
            assert read_log(out)[:before_n] == rungs_before, case
            continue
        assert "Traceback" not in log and "SIGTERM received" not in log and "Tuner.restore" not in log, \
            (case, log[-3000:])
        stops = [line for line in log.splitlines() if line.startswith("tuneall: stopped by")]
        assert len(stops) == 1 and signal.Signals(sig).name in stops[0] and f"tuneall resume {out}" in stops[0], \
            (case, log)
        assert json.loads((out / R.META).read_text())["state"] == "interrupted", case
        kept = journal.read(out)
        assert {r["trial_id"] for r in kept} >= set(before), case  # what had finished is kept
        assert all(r["error"] is None for r in kept), case  # trials the signal killed are not recorded as failures
        if kept:  # the report of what finished, marked as such (no report at all before the first trial)
            assert "INCOMPLETE" in (out / R.SUMMARY).read_text(), case
            assert len(set(pd.read_csv(out / "trials.csv")["trial_id"])) == len(kept), case
        else:
            assert R.SUMMARY not in {p.name for p in out.iterdir()}, case
        rungs = read_log(out)
        assert len(rungs) == len({(r["rung"], json.dumps(r["point"], sort_keys=True)) for r in rungs}), case
        assert len(rungs) >= (before_n if moment == "mid-rung" else 0), case  # finished rung trials kept
    _resume_to_the_end_on_loopback_alone(out, tmp_path)
    after = journal.read(out)
    ids = [r["trial_id"] for r in after]
    assert len(ids) == len(set(ids)) and all(r["error"] is None for r in after)
    if searcher == "random":
        assert len(after) == TRIALS
    else:  # every rung trial finished before a stop was kept, not run again
        rungs = read_log(out)
        assert len(rungs) == len({(r["rung"], json.dumps(r["point"], sort_keys=True)) for r in rungs})
        assert {r["rung"] for r in rungs} == set(range(len(RUNGS)))  # every rung ran
        assert len([r for r in rungs if r["rung"] == 0]) == 12  # every feasible point at the first
        assert after and all(r["metrics"]["status"] == "ok" for r in after)
    assert json.loads((out / R.META).read_text())["state"] == "complete"
    assert "INCOMPLETE" not in (out / R.SUMMARY).read_text()
    assert "disagreed" not in driver_log.read_text()


def _resume_to_the_end_on_loopback_alone(out: Path, tmp_path: Path) -> None:
    """The last resume, with the default node address as a user runs it: a second run on the same directory is
    refused in one line naming the owner's pid, and none of the run's processes listens beyond loopback (Ray's
    token-authenticated C++ gRPC servers aside: procs.WILDCARD_OK)."""
    import ipaddress
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TUNEALL_NODE_IP"}
    args = [sys.executable, "-m", "tuneall.cli", "resume", str(out), "--verbose", "0"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=open(tmp_path / "driver.log", "a"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: f'"pid": {proc.pid},' in (out / "tuneall.lock").read_text(), 120,
              "the resume to own its directory")  # the lock file names its holder while held
        second = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"pid {proc.pid}" in second.stderr, second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        seen: set = set()
        while proc.poll() is None:
            seen |= listeners(proc.pid)
            time.sleep(0.5)
        assert proc.returncode == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        _kill_group(proc.pid)
    assert seen, "no listener seen: the check did not look at the run's processes"
    exposed = [(name, ip, port) for name, ip, port in seen if not ipaddress.ip_address(ip).is_loopback
               and not (ipaddress.ip_address(ip).is_unspecified and any(w in name for w in WILDCARD_OK))]
    assert not exposed, exposed


@pytest.mark.slow
def test_a_local_ray_runs_outside_the_drivers_process_group():
    """What makes a group SIGTERM safe: none of a local Ray's processes shares the driver's process group, and
    they are gone once the session ends."""
    pytest.importorskip("ray")
    from tuneall.runner.cluster import ray_session
    from tuneall.runner.context import RunOptions

    with ray_session(RunOptions(num_cpus=1)):
        ray_procs = _descendants(os.getpid())
        groups = {os.getpgid(p) for p in ray_procs if Path(f"/proc/{p}").exists()}
    assert len(ray_procs) >= 2 and os.getpgrp() not in groups  # GCS and raylet at least
    _wait(lambda: not [p for p in ray_procs if Path(f"/proc/{p}").exists() and
                       "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[:1]], 30,
          "Ray's processes to stop")
