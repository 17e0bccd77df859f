"""Tests for tuneall.lock: one process per results directory; a SIGKILLed owner's lock goes away by itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tuneall.core.errors import ConfigError
from tuneall.rundir.lock import LOCK_FILE, DirectoryLock

ROOT = Path(__file__).resolve().parents[1]


def _try_lock_in_subprocess(d: Path) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        from tuneall.rundir.lock import DirectoryLock
        from tuneall.core.errors import ConfigError
        try:
            with DirectoryLock({str(d)!r}):
                print("ACQUIRED")
        except ConfigError as exc:
            print("REFUSED", exc)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def _holder(d: Path) -> subprocess.Popen:
    """A python process that takes the lock, says so, and sleeps."""
    code = textwrap.dedent(f"""
        import time
        from tuneall.rundir.lock import DirectoryLock
        lock = DirectoryLock({str(d)!r}).acquire()
        print("HELD", flush=True)
        time.sleep(300)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "HELD"
    return proc


def test_second_acquire_in_the_same_process_is_refused(tmp_path):
    d = tmp_path / "results" / "run"  # created on demand
    with DirectoryLock(d) as lock:
        assert lock.held and (d / LOCK_FILE).is_file()
        owner = json.loads((d / LOCK_FILE).read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname() and owner["command"]
        with pytest.raises(ConfigError) as err:
            DirectoryLock(d).acquire()  # its own open file description: flock refuses it
        msg = str(err.value)
        assert "\n" not in msg and str(d) in msg and f"pid {os.getpid()}" in msg
        assert socket.gethostname() in msg and "in use by another tuneall process" in msg
    assert not lock.held and (d / LOCK_FILE).read_text() == ""  # released: no stale owner left behind
    with DirectoryLock(d):  # and free again
        pass


def test_acquire_from_a_subprocess_is_refused_while_held(tmp_path):
    with DirectoryLock(tmp_path):
        out = _try_lock_in_subprocess(tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("REFUSED") and f"pid {os.getpid()}" in out.stdout
    out = _try_lock_in_subprocess(tmp_path)
    assert out.stdout.strip() == "ACQUIRED", out.stderr


def test_lock_of_a_sigkilled_holder_is_released(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(ConfigError, match=f"pid {proc.pid} on host"):
            DirectoryLock(tmp_path).acquire()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == proc.pid  # the dead owner's note remains...
    with DirectoryLock(tmp_path):  # ...but the lock died with it
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_release_is_idempotent_and_double_acquire_is_a_bug(tmp_path):
    lock = DirectoryLock(tmp_path).acquire()
    with pytest.raises(RuntimeError):
        lock.acquire()
    lock.release()
    lock.release()
    assert "held=False" in repr(lock)


def test_unknown_owner_and_unwritable_directory(tmp_path):
    with DirectoryLock(tmp_path):
        (tmp_path / LOCK_FILE).write_text("not json")  # an owner that could not describe itself
        t0 = time.monotonic()
        with pytest.raises(ConfigError, match="owner unknown"):
            DirectoryLock(tmp_path).acquire()
        assert time.monotonic() - t0 < 2  # never waits for the owner
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot create the lock file") as err:
        DirectoryLock(tmp_path / "file" / "sub").acquire()  # a file where a directory should be
    assert "\n" not in str(err.value)
