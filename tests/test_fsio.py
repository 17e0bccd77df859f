"""Tests for tuneall.rundir.fsio: atomic writes leave the old file or the new one, never a part; JSON read in one line."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest

from tuneall.rundir import fsio
from tuneall.core.errors import ConfigError
from tuneall.rundir.fsio import atomic_path, atomic_write_bytes, atomic_write_frame, atomic_write_text, read_json_checked


def test_write_text_and_bytes_replace_and_leave_no_temp(tmp_path):
    p = tmp_path / "tuneall.json"
    atomic_write_text(p, "first\r\nline é\n")
    assert p.read_bytes() == "first\r\nline é\n".encode()  # newlines as given, UTF-8
    atomic_write_bytes(p, b"\x00\x01second")
    assert p.read_bytes() == b"\x00\x01second"
    assert [x.name for x in tmp_path.iterdir()] == ["tuneall.json"]


def test_mode_follows_umask_or_the_replaced_file(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
        assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640  # not mkstemp's 0600
    finally:
        os.umask(old)
    (tmp_path / "old.txt").write_text("x")
    os.chmod(tmp_path / "old.txt", 0o604)
    atomic_write_text(tmp_path / "old.txt", "y")
    assert stat.S_IMODE((tmp_path / "old.txt").stat().st_mode) == 0o604


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "summary.md"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed mid-write")
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["summary.md"]

    def no_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsio.os, "replace", no_replace)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(p, "new")
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["summary.md"]


def test_temp_file_keeps_the_suffix_and_is_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(fsio.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    with atomic_path(tmp_path / "frontier.png") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp.name.startswith(".frontier.")
        with open(tmp, "wb") as f:
            np.save(f, np.arange(3))
    assert (tmp_path / "frontier.png").stat().st_size > 0
    assert len(synced) == 2  # the file, then its directory


@pytest.mark.parametrize("name", ["trials.csv", "trials.parquet"])
def test_write_frame_round_trips(tmp_path, name):
    df = pd.DataFrame({"trial_id": ["0001", "ab"], "acc": [0.5, float("nan")], "k": [1, 3]})
    atomic_write_frame(df, tmp_path / name)
    if name.endswith(".csv"):
        back = pd.read_csv(tmp_path / name, dtype={"trial_id": str})
    else:
        back = pd.read_parquet(tmp_path / name)
    pd.testing.assert_frame_equal(back, df)
    assert [x.name for x in tmp_path.iterdir()] == [name]
    with pytest.raises(ValueError, match="expected a .csv"):
        atomic_write_frame(df, tmp_path / "trials.xlsx")


GOOD = json.dumps({"config": {"budget": {"value": 3e6}}, "state": "running"}, indent=1).encode()

# (file contents, words the one-line error must contain)
BAD_JSON = {
    "cut-in-half": (GOOD[: len(GOOD) // 2], "cut short"),
    "empty": (b"", "is empty"),
    "whitespace": (b"  \n", "is empty"),
    "binary": (bytes(range(256)), "binary"),
    "not-utf8": ('{"name": "café"}'.encode("latin-1"), "not UTF-8"),
    "list": (b"[1, 2]", "holds an array, expected a JSON object"),
    "string": (b'"tuneall"', "holds a string"),
    "number": (b"3", "holds a number"),
    "null": (b"null", "holds null"),
    "trailing-garbage": (GOOD + b"}", "not valid JSON"),
    "huge-integer": (b'{"n": ' + b"1" * 5000 + b"}", "not usable JSON"),
}


@pytest.mark.parametrize("content, words", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_read_json_checked_refuses_in_one_line(tmp_path, content, words):
    p = tmp_path / "tuneall.json"
    p.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        read_json_checked(p, "search metadata")
    msg = str(err.value)
    assert words in msg and msg.startswith(f"search metadata {p} ") and "\n" not in msg and len(msg) < 300


def test_read_json_checked_ok_missing_and_directory(tmp_path):
    p = tmp_path / "tuneall.json"
    p.write_bytes(GOOD)
    assert read_json_checked(p, "search metadata") == json.loads(GOOD)
    p.write_text("{}")
    assert read_json_checked(p, "x") == {}  # required keys are the caller's business
    with pytest.raises(ConfigError, match="does not exist"):
        read_json_checked(tmp_path / "nope.json", "search metadata")
    with pytest.raises(ConfigError, match="is a directory"):
        read_json_checked(tmp_path, "search metadata")
