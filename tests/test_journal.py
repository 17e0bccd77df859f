"""Tests for tuneall.rundir.journal: a torn line never swallows the next record, and damaged lines are reported."""

from __future__ import annotations

import json
import logging

import pytest

from tuneall.rundir import journal
from tuneall.rundir.journal import JOURNAL, JournalRead


def rec(i: int, **extra) -> dict:
    return {"trial_id": f"t{i}", "config": {"point": {"k": i}}, "metrics": {"acc": 0.5}, "error": None, **extra}


def line(r) -> bytes:
    return json.dumps(r).encode() + b"\n"


def test_round_trip_and_missing_journal(tmp_path):
    assert journal.read(tmp_path) == [] and journal.read_checked(tmp_path) == JournalRead([], [])
    for i in range(3):
        journal.append(tmp_path, rec(i, metrics={"acc": float("nan"), "n": i}))
    records, skipped = journal.read_checked(tmp_path)
    assert [r["trial_id"] for r in records] == ["t0", "t1", "t2"] and skipped == []
    assert records[1]["metrics"] == {"acc": None, "n": 1}  # non-finite floats stored as null
    assert (tmp_path / JOURNAL).read_bytes().count(b"\n") == 3


def test_append_after_a_torn_line_starts_a_fresh_line(tmp_path):
    journal.append(tmp_path, rec(1))
    full = line(rec(2))
    with open(tmp_path / JOURNAL, "ab") as f:
        f.write(full[: len(full) // 2])  # a writer killed mid-line
    before = journal.read_checked(tmp_path)
    assert [r["trial_id"] for r in before.records] == ["t1"]
    assert len(before.skipped) == 1 and before.skipped[0][0] == 2 and "cut short" in before.skipped[0][1]

    journal.append(tmp_path, rec(3))
    journal.append(tmp_path, rec(4))
    after = journal.read_checked(tmp_path)
    assert [r["trial_id"] for r in after.records] == ["t1", "t3", "t4"]  # t3 not glued onto the torn line
    assert [n for n, _ in after.skipped] == [2] and "not JSON" in after.skipped[0][1]
    assert "cut short" not in after.skipped[0][1]  # no longer the last line


def test_append_to_an_empty_file_adds_no_blank_line(tmp_path):
    (tmp_path / JOURNAL).write_bytes(b"")
    journal.append(tmp_path, rec(1))
    assert (tmp_path / JOURNAL).read_bytes() == json.dumps(rec(1), separators=(",", ":")).encode() + b"\n"


GOOD = line(rec(0))

# (damaged line, words its reason must contain)
DAMAGED = {
    "truncated-json": (b'{"trial_id": "t9", "config": {', "not JSON"),
    "binary-garbage": (bytes(range(1, 10)) + b"\xff\xfe\x00\x01", "not UTF-8"),
    "nul-bytes": (b"\x00\x00\x00\x00", "binary"),
    "latin-1-text": ('{"trial_id": "caf\xe9"}'.encode("latin-1"), "not UTF-8"),
    "json-list": (b"[1, 2, 3]", "array, expected an object"),
    "json-string": (b'"hello"', "string, expected an object"),
    "json-number": (b"42", "number, expected an object"),
    "json-null": (b"null", "null, expected an object"),
    "no-trial-id": (json.dumps({"config": {}, "metrics": {}}).encode(), "no 'trial_id'"),
    "no-config": (json.dumps({"trial_id": "a", "metrics": {}}).encode(), "no 'config'"),
    "no-metrics": (json.dumps({"trial_id": "a", "config": {}}).encode(), "no 'metrics'"),
    "trial-id-number": (json.dumps({"trial_id": 7, "config": {}, "metrics": {}}).encode(),
                        "'trial_id' is a JSON number"),
    "trial-id-empty": (json.dumps({"trial_id": "", "config": {}, "metrics": {}}).encode(), "'trial_id' is empty"),
    "config-list": (json.dumps({"trial_id": "a", "config": [], "metrics": {}}).encode(), "'config' is a JSON array"),
    "metrics-string": (json.dumps({"trial_id": "a", "config": {}, "metrics": "x"}).encode(),
                       "'metrics' is a JSON string"),
    "error-number": (json.dumps({"trial_id": "a", "config": {}, "metrics": {}, "error": 1}).encode(), "'error'"),
    "deep-nesting": (b"[" * 100000 + b"]" * 100000, "not JSON"),
    "huge-integer": (b'{"trial_id": "a", "config": {}, "metrics": {"n": ' + b"9" * 5000 + b"}}", "not JSON"),
    "two-records-glued": (GOOD.rstrip(b"\n") + GOOD.rstrip(b"\n"), "not JSON"),
}


@pytest.mark.parametrize("bad, reason", DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_line_is_skipped_and_reported(tmp_path, bad, reason):
    (tmp_path / JOURNAL).write_bytes(GOOD + bad + b"\n" + line(rec(1)))
    records, skipped = journal.read_checked(tmp_path)
    assert [r["trial_id"] for r in records] == ["t0", "t1"]  # the good lines on both sides survive
    assert len(skipped) == 1 and skipped[0][0] == 2 and reason in skipped[0][1], skipped
    assert "\n" not in skipped[0][1] and len(skipped[0][1]) < 200


@pytest.mark.parametrize("bad, reason", DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_last_line_without_newline(tmp_path, bad, reason):
    (tmp_path / JOURNAL).write_bytes(GOOD + bad)
    records, skipped = journal.read_checked(tmp_path)
    assert len(records) == 1 and [n for n, _ in skipped] == [2] and reason in skipped[0][1]
    journal.append(tmp_path, rec(5))
    assert [r["trial_id"] for r in journal.read(tmp_path)] == ["t0", "t5"]


def test_valid_record_shapes_are_kept(tmp_path):
    ok = [rec(1), rec(2, error="boom"), {"trial_id": "x", "config": {}, "metrics": {}},  # error key optional
          rec(3, extra=[1, 2])]
    (tmp_path / JOURNAL).write_bytes(b"".join(map(line, ok)) + b"\n  \n")  # blank lines carry nothing
    assert journal.read_checked(tmp_path) == JournalRead(ok, [])


def test_read_warns_and_describe_is_one_line(tmp_path, caplog):
    lines = [GOOD] + [b"garbage %d\n" % i for i in range(7)] + [line(rec(1))]
    (tmp_path / JOURNAL).write_bytes(b"".join(lines))
    with caplog.at_level(logging.WARNING, logger="tuneall.rundir.journal"):
        records = journal.read(tmp_path)
    assert [r["trial_id"] for r in records] == ["t0", "t1"]
    result = journal.read_checked(tmp_path)
    assert [n for n, _ in result.skipped] == list(range(2, 9))
    text = result.describe(tmp_path / JOURNAL)
    assert "\n" not in text and "skipped 7 damaged line(s)" in text and "line 2:" in text and "2 more" in text
    assert str(tmp_path / JOURNAL) in text
    assert [r.getMessage() for r in caplog.records] == [text]
    assert JournalRead(records, []).describe() == ""
