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
