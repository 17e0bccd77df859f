"""Signals: SIGTERM (a job scheduler) and SIGINT (Ctrl-C) stop a search cleanly at any moment: one tuneall line,
state "interrupted", exit 143 / 130, and a resume that loses nothing (finished trials and finished halving rung trials
kept, nothing run twice). Fast unit tests first; the end-to-end ones (real Ray Tune searches) are marked slow."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tuneall.rundir import journal
from tuneall.rundir import results as R
from tuneall.runner import signals
from tuneall.tuning.halving import read_log

from procs import cli as _cli, descendants as _descendants, kill_tree as _kill_group, run_to_end, \
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


# --- end to end: a real search, a signal, a resume --------------------------------------------------------------

SPACE = "name: sig\nfamilies: [cnn3]\nwidth: [0.25, 0.5]\nk: [1, 2, 3]\nbatch_size: 32\n"


MOMENTS = {  # when the signal is sent: (searcher, condition on (log text, results dir))
    "start": ("random", lambda log, out: "tuneall: searching" in log),
    "mid-trial": ("random", lambda log, out: len(journal.read(out)) >= 1),
    "mid-rung": ("halving", lambda log, out: (out / "halving.jsonl").exists()),
}


# Both signals mid-trial (the moment a group signal also reaches Ray's processes' parent), one each at the other
# moments: the handler is one code path for both, only the exit code differs (the unit tests above check both).
CASES = [(signal.SIGTERM, 143, "mid-trial", "group"), (signal.SIGINT, 130, "mid-trial", "group"),
         (signal.SIGINT, 130, "start", "group"), (signal.SIGTERM, 143, "mid-rung", "group"),
         (signal.SIGINT, 130, "mid-rung", "driver")]
CASES.append((signal.SIGTERM, 143, "mid-trial", "driver"))  # a scheduler that signals the driver's pid only
# A group SIGTERM reaches the driver only: a local Ray's processes sit in process groups of their own
# (runner/cluster.py, _own_process_groups), so they cannot die under the driver before its handler runs.


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, moment, target", CASES,
                         ids=[f"{signal.Signals(c[0]).name}-{c[2]}-{c[3]}" for c in CASES])
def test_a_signal_stops_cleanly_and_resume_loses_nothing(tmp_path, sig, code, moment, target):
    searcher, ready = MOMENTS[moment]
    (tmp_path / "sig.yaml").write_text(SPACE)
    out = tmp_path / "results" / "s"
    args = ["search", "--dataset", "digits", "--budget", "3e6", "--space", "sig.yaml", "--trials", "4", "--seeds",
            "1", "--min-steps", "20", "--name", "s", "--searcher", searcher]
    proc = _cli(args, tmp_path)
    try:
        _wait(lambda: ready((tmp_path / "driver.log").read_text(), out), 300, moment)
        before = {r["trial_id"]: r for r in journal.read(out)} if (out / R.JOURNAL).exists() else {}
        # The whole process group, as a terminal's Ctrl-C or a scheduler does, or the driver alone.
        (os.killpg if target == "group" else os.kill)(proc.pid, sig)
        rc = proc.wait(timeout=120)
    finally:
        _kill_group(proc.pid)
    log = (tmp_path / "driver.log").read_text()
    assert rc == code, log[-3000:]
    assert "Traceback" not in log and "SIGTERM received" not in log and "Tuner.restore" not in log, log[-3000:]
    stops = [line for line in log.splitlines() if line.startswith("tuneall: stopped by")]
    assert len(stops) == 1 and signal.Signals(sig).name in stops[0] and f"tuneall resume {out}" in stops[0], log
    assert json.loads((out / R.META).read_text())["state"] == "interrupted"
    kept = journal.read(out)
    assert {r["trial_id"] for r in kept} >= set(before)  # what had finished is kept
    assert all(r["error"] is None for r in kept)  # trials the signal killed are not recorded as failures
    rungs = len(read_log(out))

    run_to_end(["resume", str(out), "--verbose", "0"], tmp_path)
    after = journal.read(out)
    ids = [r["trial_id"] for r in after]
    assert len(ids) == len(set(ids)) and set(ids) >= {r["trial_id"] for r in kept}
    if searcher == "random":
        assert len(after) == 4
    else:  # every rung trial finished before the stop was kept, not run again
        log_after = read_log(out)
        assert len(log_after) == len({(r["rung"], json.dumps(r["point"], sort_keys=True)) for r in log_after})
        assert len(log_after) >= rungs
    assert json.loads((out / R.META).read_text())["state"] == "complete"
    assert "disagreed" not in (tmp_path / "driver.log").read_text()


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
