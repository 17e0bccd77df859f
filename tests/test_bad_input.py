"""Bad input to `tuneall search` that concerns results directories and clusters: one line, exit code 2, and an
existing results directory is never touched unless it is being resumed."""

from __future__ import annotations

import json
import socket

import pytest

from tuneall.cli import main

ARGS = ["search", "--dataset", "digits", "--budget", "3e6", "--trials", "2", "--seeds", "1"]


def _snapshot(d):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in d.iterdir()}


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def _fake_search_dir(tmp_path, budget=3e6):
    d = tmp_path / "r"
    d.mkdir()
    (d / "tuneall.json").write_text(json.dumps({"config": {"budget": {"value": budget}}}))
    (d / "trials.csv").write_text("trial_id\nabc\n")
    return d


def test_existing_results_dir_is_refused_and_untouched(tmp_path, capsys):
    d = _fake_search_dir(tmp_path)
    before = _snapshot(d)
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(tmp_path), "--name", "r"])
    assert "already exists" in err and "tuneall resume" in err
    assert _snapshot(d) == before


def test_resume_of_a_different_search_is_refused_and_untouched(tmp_path, capsys):
    d = _fake_search_dir(tmp_path, budget=1e9)
    before = _snapshot(d)
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(tmp_path), "--name", "r", "--resume"])
    assert "different search" in err and "budget" in err
    assert _snapshot(d) == before


def test_resume_of_a_directory_that_is_not_a_search(tmp_path, capsys):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(tmp_path), "--name", "r", "--resume"])
    assert "not a tuneall" in err
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"
    err = _one_line_error(capsys, ["resume", str(tmp_path / "r")])
    assert "not a tuneall" in err


def test_resume_of_nothing(tmp_path, capsys):
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(tmp_path), "--name", "nope", "--resume"])
    assert "nothing to resume" in err


@pytest.mark.parametrize("address", ["127.0.0.2:{port}", "nonsense", "127.0.0.2:notaport"])
def test_unreachable_or_malformed_address(tmp_path, capsys, address):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(tmp_path), "--address", address.format(port=port)])
    assert "address" in err
    assert not any(tmp_path.iterdir())  # nothing written


# --- refused before anything is created: (extra arguments, words the one-line error must contain) -----------------
SPACE_BAD_DEPTH = "name: d\nfamilies: [wrn]\ndepth: [15]\nk: [1]\n"
SPACE_TINY_WIDTH = "name: w\nfamilies: [cnn3]\nwidth: 0.000000001\nk: [1]\n"

REFUSED = [
    (["--num-cpus", "0"], "num_cpus"),
    (["--num-cpus", "-1"], "num_cpus"),
    (["--cpus-per-trial", "1000"], "1000 CPUs"),
    (["--cpus-per-trial", "2", "--num-cpus", "1"], "--num-cpus"),
    (["--seed", "-1"], "seed"),
    (["--seed", "8589934592"], "seed"),
    (["--max-failures", "-5"], "max_failures"),
    (["--name", "../x"], "plain directory name"),
    (["--name", "a/b"], "plain directory name"),
    (["--name", "/abs"], "plain directory name"),
    (["--storage-path", "{file}"], "is a file"),
    (["--storage-path", "{file}/sub"], "which is a file"),
    (["--storage-path", "/proc/tuneall"], "/proc"),
    (["--storage-path", "/sys"], "/sys"),
    (["--study-storage", "not a url"], "study storage"),
    (["--study-storage", "nosuchdb://u@h/x"], "study storage"),
    (["--study-storage", "sqlite:////nonexistent-tuneall-dir/x.db"], "does not exist"),
    (["--study-storage", "sqlite://"], "in-memory"),
    (["--space", "{bad_depth}"], "cannot build depth 15"),
    (["--space", "{tiny_width}"], "collapses cnn3 to one channel"),
    (["--batch-size", "100000"], "training examples"),
]


@pytest.mark.parametrize("extra,words", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_refused_in_one_line_before_anything_is_created(tmp_path, capsys, monkeypatch, extra, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("not a directory")
    (tmp_path / "bad_depth.yaml").write_text(SPACE_BAD_DEPTH)
    (tmp_path / "tiny_width.yaml").write_text(SPACE_TINY_WIDTH)
    subs = {"file": tmp_path / "file", "bad_depth": tmp_path / "bad_depth.yaml",
            "tiny_width": tmp_path / "tiny_width.yaml"}
    extra = [a.format(**subs) for a in extra]
    before = sorted(p.name for p in tmp_path.iterdir())
    storage = [] if "--storage-path" in extra else ["--storage-path", str(tmp_path / "res")]
    err = _one_line_error(capsys, [*ARGS, *storage, *extra])
    assert words in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no results dir, no study database


def test_gpus_per_trial_without_a_gpu(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(tmp_path), "--gpus-per-trial", "1"])
    assert "GPU" in err
    assert not any(tmp_path.iterdir())


def test_unwritable_storage_path(tmp_path, capsys, monkeypatch):
    """Root can write anywhere, so the refusal is checked by making the access check say no."""
    import tuneall.results as R

    ro = tmp_path / "ro"
    ro.mkdir()
    real = R.os.access
    monkeypatch.setattr(R.os, "access", lambda p, mode: False if str(p) == str(ro) else real(p, mode))
    err = _one_line_error(capsys, [*ARGS, "--storage-path", str(ro / "results")])
    assert "not writable" in err
    assert not any(ro.iterdir())


def test_estimate_of_centuries_warns(capsys):
    from tuneall.estimate import announce

    announce(lambda: __import__("pandas").Series([3.2e9]), lambda s: float(s.sum()), "1 trial")
    err = capsys.readouterr().err
    assert "warning" in err and "years" in err and len(err.strip().splitlines()) == 1


def test_batch_size_within_a_data_fraction():
    from tuneall.data import check_batch_sizes, load_dataset
    from tuneall.errors import DataError

    data = load_dataset("digits")
    n = data.x_train.shape[0]
    check_batch_sizes([{"batch_size": n, "data_fraction": 1.0}], data)
    with pytest.raises(DataError, match="data fraction 0.1"):
        check_batch_sizes([{"batch_size": n // 2, "data_fraction": 0.1}], data)
