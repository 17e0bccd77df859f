"""Results directories at a storage URI (tuneall.rundir.storage, .lease), against a local S3-compatible server:
moto's server mode on 127.0.0.1 (a random port), started and stopped here. pyarrow.fs (and Ray Tune) reach it
through the standard AWS environment variables."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tuneall.core.errors import ConfigError
from tuneall.rundir import lease as L
from tuneall.rundir import results as R
from tuneall.rundir import storage

BUCKET = "tuneall-test"


@pytest.fixture(scope="module")
def s3_server():
    server_mod = pytest.importorskip("moto.moto_server.threaded_moto_server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    yield env
    server.stop()


@pytest.fixture()
def s3(s3_server, monkeypatch, tmp_path):
    """The server's environment in this process, an empty bucket, and a private staging directory."""
    import pyarrow.fs as pafs

    for k, v in s3_server.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(storage.STAGING_ENV, str(tmp_path / "staging"))
    bucket = f"{BUCKET}-{os.getpid()}-{len(list(tmp_path.parent.iterdir()))}"
    fs = pafs.S3FileSystem(endpoint_override=s3_server["AWS_ENDPOINT_URL"], access_key="testing",
                           secret_key="testing", region="us-east-1", allow_bucket_creation=True)
    fs.create_dir(bucket)
    storage._MIRRORS.clear()
    yield {"env": {**os.environ, **s3_server, storage.STAGING_ENV: str(tmp_path / "staging")}, "fs": fs,
           "bucket": bucket, "uri": f"s3://{bucket}/x"}
    storage._MIRRORS.clear()


def _remote(fs, path: str) -> dict[str, bytes]:
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    out = {}
    for i in infos:
        if i.type == pafs.FileType.File:
            with fs.open_input_stream(i.path) as f:
                out[i.path[len(path) + 1:]] = f.read()
    return out


# --- URIs and local paths ----------------------------------------------------------------------------------------

def test_file_uri_is_the_local_path(tmp_path):
    out = R.results_path(f"file://{tmp_path}/res", "run")
    assert out == tmp_path / "res" / "run"
    assert R.resolve_dir(f"file://{tmp_path}/res/run") == tmp_path / "res" / "run"
    R.check_storage(f"file://{tmp_path}/res")  # a writable local directory: accepted
    with pytest.raises(ConfigError, match="must be local"):
        R.results_path("file://otherhost/res", "run")


@pytest.mark.parametrize("uri", ["ftp://host/x", "http://host/x", "foo://bar"])
def test_unsupported_scheme_refused_in_one_line(uri, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        R.check_storage(uri)
    assert "is not supported" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="is not supported"):
        R.results_path(uri, "run")
    assert list(tmp_path.iterdir()) == []  # never written as a local folder


def test_child_and_parent_keep_the_query():
    uri = "s3://b/x?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.child(uri, "run") == "s3://b/x/run?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.parent(storage.child(uri, "run")) == (uri, "run")
    with pytest.raises(ConfigError, match="names no results directory"):
        storage.parent("s3://bucket")


# --- against the S3 server ---------------------------------------------------------------------------------------

def test_missing_bucket_refused_in_one_line(s3):
    with pytest.raises(ConfigError) as e:
        R.check_storage("s3://no-such-bucket-here/x")
    assert "bucket 'no-such-bucket-here' does not exist" in str(e.value) and "\n" not in str(e.value)
    R.check_storage(s3["uri"])  # the existing bucket: accepted


def test_unreachable_endpoint_refused_in_one_line(monkeypatch):
    for k, v in {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)  # port 9 (discard) on loopback: nothing listens
    with pytest.raises(ConfigError) as e:
        R.check_storage("s3://bkt/x")
    assert "is not reachable" in str(e.value) and "\n" not in str(e.value)


def test_a_store_that_does_not_answer_is_refused_in_bounded_time(monkeypatch):
    """gs:// here has no network: the client retries for minutes; the check gives up after CHECK_TIMEOUT_S."""
    import time

    monkeypatch.setattr(storage, "CHECK_TIMEOUT_S", 2.0)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as e:
        R.check_storage("gs://tuneall-no-network/x")
    assert "gs://tuneall-no-network/x' is not reachable" in str(e.value) and "\n" not in str(e.value)
    assert time.monotonic() - t0 < 30
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent.json")  # credentials that cannot be used
    with pytest.raises(ConfigError) as e:
        R.check_storage("gs://tuneall-no-network/x")
    assert "refused these credentials" in str(e.value) and "\n" not in str(e.value)


def test_refused_credentials_refused_in_one_line(monkeypatch):
    """A second moto server, in its own process, that checks credentials (moto reads the setting at import)."""
    pytest.importorskip("moto.server")
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        end = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.time() < end and server.poll() is None, "moto server did not start"
                time.sleep(0.1)
        for k, v in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "AKIANOTAUSER000000",
                     "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
                     "AWS_EC2_METADATA_DISABLED": "true"}.items():
            monkeypatch.setenv(k, v)
        with pytest.raises(ConfigError) as e:
            R.check_storage("s3://bkt/x")
        assert "refused these credentials" in str(e.value) and "\n" not in str(e.value)
    finally:
        server.kill()
        server.wait()


def test_a_failed_upload_mid_run_warns_once_and_is_retried(s3, capsys):
    from tuneall.core.errors import StorageError
    from tuneall.rundir import journal

    out = R.results_path(s3["uri"], "run")
    out.mkdir(parents=True)
    m = storage.mirror_of(out)
    m.fs  # opened while the endpoint is right
    good = m._fs
    m._fs = __import__("pyarrow.fs", fromlist=["x"]).S3FileSystem(
        endpoint_override="http://127.0.0.1:9", access_key="x", secret_key="y", region="us-east-1",
        connect_timeout=0.2, retry_strategy=__import__("pyarrow.fs", fromlist=["x"]).AwsStandardS3RetryStrategy(1))
    journal.append(out, {"trial_id": "t1", "config": {}, "metrics": {}, "error": None})  # does not raise
    journal.append(out, {"trial_id": "t2", "config": {}, "metrics": {}, "error": None})
    assert capsys.readouterr().err.count("warning") == 1 and m.failing
    with pytest.raises(StorageError, match="storage s3://"):
        storage.push(out)  # the end of the run: one line
    m._fs = good
    R.write_meta(out, {"kind": "search", "config": {}}, "complete")  # back: everything pushed with it
    assert not m.failing
    assert len(_remote(s3["fs"], f"{s3['bucket']}/x/run")["journal.jsonl"].splitlines()) == 2


def test_working_copy_mirrors_every_durable_write(s3):
    from tuneall.rundir import fsio, journal

    out = R.results_path(s3["uri"], "run")
    assert storage.staging_root().resolve() in out.parents and not storage.exists(out)
    out.mkdir(parents=True)
    R.write_meta(out, {"kind": "search", "config": {}}, "running")  # an atomic write: uploaded at once
    remote = f"{s3['bucket']}/x/run"
    assert json.loads(_remote(s3["fs"], remote)["tuneall.json"])["state"] == "running"
    (out / "member_store").mkdir()
    fsio.atomic_write_bytes(out / "member_store" / "a.pt", b"weights-a")
    (out / "member_store" / "a.lock").write_bytes(b"")  # a trial's lock file: never uploaded
    (out / "members").mkdir()
    (out / "members" / "t1.pt").write_bytes(b"t1")  # written by a trial process: pushed with the next journal line
    assert "members/t1.pt" not in _remote(s3["fs"], remote)
    journal.append(out, {"trial_id": "t1", "config": {}, "metrics": {"status": "ok"}, "error": None})
    got = _remote(s3["fs"], remote)
    assert got["members/t1.pt"] == b"t1" and got["member_store/a.pt"] == b"weights-a"
    assert "member_store/a.lock" not in got and len(got["journal.jsonl"].splitlines()) == 1
    (out / "members" / "t1.pt").unlink()  # save_members='best' drops a trial's members: so does the URI
    storage.push(out)
    assert "members/t1.pt" not in _remote(s3["fs"], remote)
    assert storage.exists(out)


def test_pull_makes_a_fresh_working_copy_equal(s3, tmp_path, monkeypatch):
    from tuneall.rundir import journal

    out = R.results_path(s3["uri"], "run")
    out.mkdir(parents=True)
    R.write_meta(out, {"kind": "search", "config": {}}, "complete")
    journal.append(out, {"trial_id": "t1", "config": {}, "metrics": {}, "error": None})
    (out / "sub").mkdir()
    (out / "sub" / "f.bin").write_bytes(os.urandom(3 << 20))
    storage.push(out)
    # Another machine: another staging directory, nothing local.
    monkeypatch.setenv(storage.STAGING_ENV, str(tmp_path / "other"))
    storage._MIRRORS.clear()
    again = R.resolve_dir(storage.child(s3["uri"], "run"))
    assert again != out and again.is_dir()
    for rel in ("tuneall.json", "journal.jsonl", "sub/f.bin"):
        assert (again / rel).read_bytes() == (out / rel).read_bytes()
    assert R.kind(again) == "search" and len(journal.read(again)) == 1
    with pytest.raises(ConfigError, match="does not exist"):
        R.resolve_dir(storage.child(s3["uri"], "nothing-here"))
    (again / "stale.txt").write_text("only here")  # not at the URI: a pull removes it
    storage.refresh(again)
    assert not (again / "stale.txt").exists()


def test_lease_refuses_a_second_driver_and_yields_to_a_dead_one(s3):
    out = R.results_path(s3["uri"], "run")
    m = storage.mirror_of(out)
    first = L.Lease(m).acquire()
    try:
        with pytest.raises(ConfigError, match=r"in use by another tuneall driver \(pid \d+ on host"):
            L.Lease(m).acquire()
        with pytest.raises(ConfigError, match="in use by another tuneall driver"):
            storage.refresh(out)
    finally:
        first.release()
    assert L.read(m) is None  # released: deleted
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with m.fs.open_output_stream(f"{m.root}/{L.LEASE}") as f:  # a driver of this host killed without releasing
        f.write(json.dumps({"id": "x", "pid": dead.pid, "host": socket.gethostname(), "expires": 1e12}).encode())
    second = L.Lease(m).acquire()
    assert L.read(m)["id"] == second.id
    second.release()


def _cli(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "tuneall.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_cli_refuses_bad_scheme_and_missing_bucket_before_anything_starts(s3, tmp_path, monkeypatch, capsys):
    from tuneall.cli import main

    monkeypatch.chdir(tmp_path)
    base = ["search", "--dataset", "digits", "--budget", "3e6", "--widths", "0.25", "--k", "1", "--searcher",
            "grid", "--seeds", "1", "--name", "n", "-y"]
    for uri, says in (("ftp://host/x", "scheme 'ftp://' is not supported"),
                      ("s3://no-such-bucket-here/x", "bucket 'no-such-bucket-here' does not exist")):
        assert main([*base, "--storage-path", uri]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tuneall: error: ") and err.count("\n") == 1 and says in err, err
    assert list(tmp_path.iterdir()) == []  # no 'ftp:' or 's3:' folder, no working copy


# --- end to end: a search at s3://, SIGKILLed and resumed from another working copy, then read back --------------

SPACE = """
name: uri
families: [cnn3]
width: [0.25, 0.5]
k: [1, 2]
batch_size: 32
"""
# The SIGKILL test's grid: three architectures, so that after the first finished trial reaches the URI two still
# train (a grid's later k of an architecture are answered by its first trial's members: instant), at a budget where
# each trains for seconds. With two architectures at 1e6 the kill could land after the last trial.
KILL_SPACE = SPACE.replace("width: [0.25, 0.5]", "width: [0.25, 0.375, 0.5]")
KILL_BUDGET = 3e6


def _journal_at(fs, path: str) -> list[dict]:
    from tuneall.rundir.journal import read_checked

    import tempfile

    raw = _remote(fs, path).get("journal.jsonl", b"")
    with tempfile.TemporaryDirectory() as d:
        Path(d, "journal.jsonl").write_bytes(raw)
        return read_checked(d).records


@pytest.mark.slow
def test_search_at_s3_survives_sigkill_and_reads_back(s3, tmp_path, monkeypatch):
    from procs import kill_tree as _kill_group, wait_for as _wait

    import tuneall
    from tuneall.rundir.journal import point_key

    from tuneall.tuning.search_cost import grid_reuse_cost

    (tmp_path / "uri.yaml").write_text(KILL_SPACE)
    feasible, _ = tuneall.plan(KILL_BUDGET, dataset="digits", space=str(tmp_path / "uri.yaml"), min_steps=20)
    n = len(feasible)
    # Member-steps of the grid with member reuse (each member once, to the most steps any k needs), and the most one
    # trial trains (an architecture's first trial trains all its members).
    reuse = grid_reuse_cost(feasible)["reuse"]
    in_flight = max(grid_reuse_cost(g)["reuse"] for _, g in feasible.groupby("width"))
    env = {**s3["env"], "TUNEALL_NODE_IP": "127.0.0.2", "PYTHONUNBUFFERED": "1"}
    remote, uri = f"{s3['bucket']}/x/u", storage.child(s3["uri"], "u")
    args = ["search", "--dataset", "digits", "--budget", f"{KILL_BUDGET:g}", "--space", "uri.yaml",
            "--searcher", "grid", "--seeds", "1", "--min-steps", "20", "--name", "u", "--verbose", "0", "--num-cpus", "1", "-y",
            "--storage-path", s3["uri"]]
    log = open(tmp_path / "driver.log", "a")
    proc = subprocess.Popen([sys.executable, "-m", "tuneall.cli", *args], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: len(_journal_at(s3["fs"], remote)) >= 1, 240, "a finished trial at the URI")
    finally:
        _kill_group(proc.pid)
        proc.wait(timeout=30)
    before = _journal_at(s3["fs"], remote)
    assert not (tmp_path / "s3:").exists() and 1 <= len(before) < n
    # Resumed as from another machine: a new, empty working copy; everything comes from the URI.
    env2 = {**env, storage.STAGING_ENV: str(tmp_path / "staging2")}
    r = subprocess.run([sys.executable, "-m", "tuneall.cli", "resume", uri, "--verbose", "0"], cwd=tmp_path,
                       env=env2, stdout=log, stderr=subprocess.STDOUT, timeout=400)
    assert r.returncode == 0, (tmp_path / "driver.log").read_text()[-3000:]
    after = _journal_at(s3["fs"], remote)
    assert after[: len(before)] == before  # nothing lost: every finished trial kept as written
    keys = [point_key(rec["config"]) for rec in after]
    assert n == 6 and len(after) == n and len(set(keys)) == n  # nothing duplicated: each point once
    assert all(rec["metrics"]["status"] == "ok" for rec in after)
    # Member-steps: the grid's with member reuse, plus at most the one trial in flight at the kill (its records were
    # never pushed).
    trained = sum(rec["metrics"]["member_steps_trained"] for rec in after)
    assert reuse <= trained <= reuse + in_flight, (trained, reuse, in_flight)
    files = _remote(s3["fs"], remote)
    assert json.loads(files["tuneall.json"])["state"] == "complete" and "tuneall.lease" not in files
    best = json.loads(files["members/best.json"])["trial_id"]
    # Read back from the URI in a third working copy: the report and the chosen ensemble.
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(storage.STAGING_ENV, str(tmp_path / "staging3"))
    storage._MIRRORS.clear()
    rep = tuneall.report(uri)
    assert rep["results_dir"] == uri and len(rep["frontier"]) >= 1
    assert str(rep["frontier"].attrs["best"]["trial_id"]) == best
    ens = tuneall.load_ensemble(uri)
    assert ens.evaluate()["ensemble_acc"] == pytest.approx(ens.recorded_accuracy, abs=1e-12)
