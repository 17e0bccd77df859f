"""Driving the CLI as a person or a job scheduler does, for the end-to-end tests: start it in a session of its own,
wait for a moment, and clean up every process it started (shared by the signal, kill and storage tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def cli(args: list[str], tmp: Path, **kw) -> subprocess.Popen:
    """``python -m tuneall.cli ARGS`` in ``tmp``, its output appended to ``tmp/driver.log``, in a new session."""
    env = {**os.environ, "TUNEALL_NODE_IP": "127.0.0.2", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "tuneall.cli", *args], cwd=tmp, env=env,
                            stdout=open(tmp / "driver.log", "a"), stderr=subprocess.STDOUT,
                            start_new_session=True, **kw)


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (children, theirs, ...), from /proc."""
    kids: dict[int, list[int]] = {}
    for p in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            ppid = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(p)
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL the process ``pid`` started with its session, its process group and everything below it: a local
    Ray's processes sit in process groups of their own (tuneall.runner.cluster), so the group alone misses them."""
    doomed = set(descendants(pid))
    for p in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            if os.getpgid(p) == pid:
                doomed.add(p)
        except (ProcessLookupError, PermissionError):
            pass
    for p in doomed:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def wait_for(pred, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_to_end(args: list[str], tmp: Path, timeout: float = 400) -> None:
    """Run the CLI to its end (a resume, say): exit 0 or the driver log's tail; nothing it started is left."""
    proc = cli(args, tmp)
    try:
        assert proc.wait(timeout=timeout) == 0, (tmp / "driver.log").read_text()[-3000:]
    finally:
        kill_tree(proc.pid)


# Ray's C++ gRPC servers bind every interface whatever the node address (Ray 2.60 has no option to bind them to
# loopback); they require Ray's auth token, on by default for a new local Ray. Every other listener must be loopback.
WILDCARD_OK = ("gcs_server", "raylet", "ray::", "tuneall.cli", "default_worker.py")


def listeners(root_pid: int) -> set[tuple[str, str, int]]:
    """(command line, address, port) of every socket that ``root_pid`` or a process below it listens on."""
    import ray  # noqa: F401  (puts Ray's bundled psutil on the path)
    import psutil

    out = set()
    try:
        procs = [psutil.Process(root_pid)]
        procs += procs[0].children(recursive=True)
    except psutil.Error:
        return out
    for p in procs:
        try:
            name = " ".join(p.cmdline())[:160] or p.name()  # an exiting process has no command line left
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    out.add((name, c.laddr.ip, c.laddr.port))
        except psutil.Error:
            pass
    return out
