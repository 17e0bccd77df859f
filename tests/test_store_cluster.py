"""No trial writes its node's disk: the driver's store service (tuneall.store.service) and the storage choice at the
start of a run (tuneall.store.backend), down to a two-node cluster whose worker has a disk of its own."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tuneall.store import backend as B
from tuneall.store import records as S
from tuneall.store.service import ServiceStore, StoreService

HERE = Path(__file__).parent


class _Handle:
    """A StoreService called in this process as a Ray actor handle would call it (``method.remote``)."""

    def __init__(self, service: StoreService):
        self.service = service

    def __getattr__(self, name):
        fn = getattr(self.service, name)
        return type("M", (), {"remote": staticmethod(lambda *a, **kw: fn(*a, **kw))})


@pytest.fixture(scope="module")
def digits():
    from tuneall.data import load_dataset

    return load_dataset("digits")


@pytest.fixture
def in_process(monkeypatch):
    import ray

    monkeypatch.setattr(ray, "get", lambda x, timeout=None: x)


def test_leases_exclude_each_other_and_lapse_when_the_holder_stops_renewing():
    s = StoreService("/nonexistent", lease_s=0.2)
    assert s.try_lock("m", "a") and s.try_lock("m", "a")  # the holder again
    assert not s.try_lock("m", "b")
    s.renew("a")
    s.unlock("m", "b")  # not the holder: nothing happens
    assert not s.try_lock("m", "b")
    s.unlock("m", "a")
    assert s.try_lock("m", "b")
    time.sleep(0.3)  # b's process died: its lease lapses
    assert s.try_lock("m", "c") and not s.try_lock("m", "b")


def test_service_files_stay_inside_the_results_directory(tmp_path):
    s = StoreService(str(tmp_path))
    s.write_files("members/t1", {"a.pt": b"12", "ensemble.json": b"{}"})
    assert (tmp_path / "members" / "t1" / "a.pt").read_bytes() == b"12"
    assert s.stats()["file_bytes_written"] == 4
    for bad in ("../x", "/abs", ""):
        with pytest.raises(ValueError):
            s.write_files(bad, {"a": b""})
    with pytest.raises(ValueError):
        s.write_files("members", {"../../x": b""})


def test_members_through_the_service_are_bit_identical_to_the_direct_store(tmp_path, in_process, digits):
    """fetch_or_train through a ServiceStore (records shipped, locks as leases) answers and trains exactly as the
    store on this disk; the second pass trains nothing and the service counted the record bytes it moved."""
    import torch

    from tuneall.core.config import TrainConfig
    from tuneall.training.member import MemberResult, train_member

    train = TrainConfig(lr=0.05, batch_size=32)
    key = S.member_key(family="cnn3", width=0.25, depth=3, train=train, data_fraction=1.0, seed=7, data_id="d",
                       threads=torch.get_num_threads())

    def trainer(seed, steps, evals, start=None):
        return train_member("cnn3", 0.25, 3, digits, steps, seed, train, evals, start=start, keep_state=True)

    rq = [S.Request(key, 7, 30, (10, 20), 40, (10, 20, 30))]
    direct, c1 = S.fetch_or_train(S.MemberStore(tmp_path / "direct"), rq, trainer, MemberResult)
    svc = StoreService(str(tmp_path / "svc"))
    store = ServiceStore(tmp_path / "svc" / S.STORE_DIR, _Handle(svc))
    via, c2 = S.fetch_or_train(store, rq, trainer, MemberResult)
    again, c3 = S.fetch_or_train(store, rq, trainer, MemberResult)
    assert c1 == c2 and c2["member_steps_trained"] == 40
    assert c3["member_steps_trained"] == 0 and c3["members_reused"] == 1
    for r in (via[0], again[0]):
        assert set(r.test_logprobs) == set(direct[0].test_logprobs)
        assert all(torch.equal(r.test_logprobs[s], direct[0].test_logprobs[s]) for s in r.test_logprobs)
    assert len(store) == 1 and not svc.locks  # every lock released
    assert store.load(S.key_id(key), {**key, "seed": 8}) is None and store.rejected == 1  # foreign: refused there
    t = svc.stats()
    size = (tmp_path / "svc" / S.STORE_DIR / f"{S.key_id(key)}.pt").stat().st_size
    assert t["records_written"] == 1 and t["record_bytes_written"] == size
    assert t["records_read"] == 1 and t["record_bytes_read"] == size  # the second fetch read what the first wrote


def test_lookups_and_files_go_where_the_run_says(tmp_path, in_process):
    svc = StoreService(str(tmp_path))
    via = B.Storage("service", service=_Handle(svc))
    assert B.on_driver(via, os.path.join, "a", "b") == "a/b" and svc.stats()["lookups"] == 1
    assert B.on_driver(None, os.path.join, "a", "b") == "a/b" and svc.stats()["lookups"] == 1
    B.write_files(tmp_path / "elsewhere", via, "members/t", {"m.pt": b"x"})  # the service's directory, not this
    assert (tmp_path / "members" / "t" / "m.pt").exists() and not (tmp_path / "elsewhere").exists()
    assert B.reachable(str(tmp_path / "missing"), via) and not B.reachable(str(tmp_path / "missing"), None)
    assert isinstance(B.open_store(tmp_path, via), ServiceStore)
    assert type(B.open_store(tmp_path, None)) is S.MemberStore


def test_a_shared_disk_trial_refuses_a_node_that_does_not_read_the_directory(tmp_path):
    marker = tmp_path / B.MARKER
    marker.write_text("tok")
    B.check_reach(B.Storage("shared", marker=str(marker), token="tok"))
    B.check_reach(None)
    pytest.importorskip("ray")
    with pytest.raises(RuntimeError, match="does not read the results directory"):
        B.check_reach(B.Storage("shared", marker=str(tmp_path / "gone" / B.MARKER), token="tok"))


def test_tuneall_store_is_checked(monkeypatch):
    from tuneall.core.errors import ConfigError

    monkeypatch.setenv("TUNEALL_STORE", "nfs")
    with pytest.raises(ConfigError, match="TUNEALL_STORE must be one of direct, service"):
        B.check_env()
    monkeypatch.setenv("TUNEALL_STORE", "service")
    assert B.check_env() == "service"
    monkeypatch.delenv("TUNEALL_STORE")
    assert B.check_env() is None and B.choose(Path("/x"), None) == B.Storage()  # no Ray: this disk


# -- a real cluster --------------------------------------------------------------------------------------------------

CLUSTER_SH = r"""
set -e
ip link set lo up
echo "NETNS $(readlink /proc/self/ns/net)"
export PATH="$BIN:$PATH" RAY_AUTH_MODE=token RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')  # this cluster's own token
export PYTHONUNBUFFERED=1
# The one-machine reference runs while the cluster starts and runs (its own local Ray): the test waits on Ray's
# start-ups and round trips more than it computes.
python "$RUN" one "$T/one" > "$T/one.log" 2>&1 &
ONE=$!
ray start --head --port=6390 --num-cpus=0 --include-dashboard=false --node-ip-address=127.0.0.2 \
    --temp-dir="$T/ray" --object-store-memory=200000000 > "$T/head.log" 2>&1
mkdir -p "$T/cluster/store" "$T/worker_disk"
unshare -m sh -c "mount --bind '$T/worker_disk' '$T/cluster/store' && exec ray start --address=127.0.0.2:6390 \
    --num-cpus=2 --node-ip-address=127.0.0.3 --object-store-memory=200000000" > "$T/worker.log" 2>&1
python "$RUN" cluster "$T/cluster" 127.0.0.2:6390 > "$T/cluster.log" 2>&1 || { tail -80 "$T/cluster.log"; exit 4; }
wait $ONE || { tail -50 "$T/one.log"; exit 3; }
"""


def _netns_pids(ns: str) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                if os.readlink(f"/proc/{p}/ns/net") == ns:
                    out.append(int(p))
            except OSError:
                pass
    return out


def _can_isolate() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _can_isolate(), reason="needs root and unshare (network and mount namespaces)")
def test_a_cluster_without_a_shared_disk_matches_one_machine_and_leaves_the_worker_disk_empty():
    """A head with 0 CPUs (every trial runs on the worker) and a worker whose storage path is a disk of its own (a
    bind mount in a private mount namespace), all inside a network namespace of their own (nothing listens beyond
    it). Grid, halving, TPE without the member store, resume and sweep: complete results on the driver, the
    member-steps of one machine, the chosen ensemble loaded on the driver reproducing its recorded accuracy, and
    nothing on the worker's disk."""
    t = Path(tempfile.mkdtemp(prefix="tsc", dir="/tmp"))  # short: Ray's socket paths live under it
    script = t / "cluster.sh"
    script.write_text(CLUSTER_SH)
    env = {**os.environ, "T": str(t), "BIN": str(Path(sys.executable).parent),
           "RUN": str(HERE / "cluster_store_run.py")}
    env.pop("TUNEALL_STORE", None)
    proc = subprocess.Popen(["unshare", "-n", "bash", str(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    ns = proc.stdout.readline().split()[-1]
    try:
        rest, _ = proc.communicate(timeout=2400)  # minutes on an idle machine; far more on a loaded one
        assert proc.returncode == 0, rest
    finally:
        for pid in _netns_pids(ns):  # everything in the namespace is this test's (Ray's daemons included)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    one = json.loads((t / "one" / "summary.json").read_text())
    cl = json.loads((t / "cluster" / "summary.json").read_text())
    log = (t / "cluster.log").read_text()
    print({m: (one[m]["member_steps"], cl[m]["member_steps"]) for m in ("grid", "halving", "tpe", "resume", "sweep")},
          {m: cl[m]["traffic"] for m in ("grid", "tpe")})  # member-steps (one machine, cluster); bytes moved
    assert one["nodes"] == 1 and cl["nodes"] == 2
    assert "cannot read" in log and "store service" in log  # the mode, said in one line per run
    for mode in ("grid", "halving", "tpe", "resume"):
        a, b = one[mode], cl[mode]
        assert b["state"] == "complete" and b["statuses"] == ["ok"] and b["trials"] == a["trials"], (mode, b)
        assert b["member_steps"] == a["member_steps"], (mode, a["member_steps"], b["member_steps"])
        assert b["reproduced_acc"] == pytest.approx(b["recorded_acc"], abs=1e-6), mode
        assert b["recorded_acc"] == a["recorded_acc"], mode  # the same numbers as one machine
        assert len(b["nodes"]) == 1  # the worker: the head has no CPU
        assert b["traffic"]["records_written"] + b["traffic"]["files_written"] > 0
        assert a["traffic"] is None  # one machine: the results directory directly, no service
    assert cl["sweep"] == one["sweep"] and cl["sweep"]["failed_jobs"] == 0
    assert not any((t / "worker_disk").iterdir()), list((t / "worker_disk").rglob("*"))
    shutil.rmtree(t, ignore_errors=True)
