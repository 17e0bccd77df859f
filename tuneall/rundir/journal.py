"""The trial journal: every finished trial appended to ``journal.jsonl`` and fsynced the moment it finishes.

Ray Tune's own experiment state is saved every few seconds at best, so a driver killed right after a trial ends can
lose it; the journal is what ``--resume`` and the trials table are rebuilt from.

A kill mid-write can leave a partial last line. :func:`append` then starts the next record on a fresh line, so only
the torn record is lost, and :func:`read_checked` says which lines it could not use and why (never silently).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import NamedTuple

JOURNAL = "journal.jsonl"

log = logging.getLogger(__name__)


class JournalRead(NamedTuple):
    """What :func:`read_checked` found: the usable records, and ``(line_number, reason)`` for each damaged line."""

    records: list[dict]
    skipped: list[tuple[int, str]]

    def describe(self, path: str | Path = JOURNAL) -> str:
        """One line naming the skipped lines and why ('' when nothing was skipped)."""
        if not self.skipped:
            return ""
        shown = "; ".join(f"line {n}: {why}" for n, why in self.skipped[:5])
        more = f"; and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
        return f"{path}: skipped {len(self.skipped)} damaged line(s) ({shown}{more})"


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def append(results_dir: str | Path, record: dict) -> None:
    """Append one trial record and force it to disk before returning.

    If the file does not end in a newline (a writer was killed mid-line), the record starts on a fresh line, so the
    torn line stays a single damaged line instead of swallowing this record too.
    """
    path = Path(results_dir) / JOURNAL
    payload = json.dumps(_jsonable(record), separators=(",", ":")).encode("utf-8") + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size and _last_byte(path, size) != b"\n":
            payload = b"\n" + payload
        view = memoryview(payload)
        while view:  # one write in practice; loop in case the kernel takes part of it
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    from tuneall.rundir import storage

    storage.after_write(path)  # a URI results directory: pushed, this record last


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(size - 1)
        return f.read(1)


def read(results_dir: str | Path) -> list[dict]:
    """All usable records, in order. Damaged lines are left out and logged as a warning (see :func:`read_checked`)."""
    result = read_checked(results_dir)
    if result.skipped:
        log.warning("%s", result.describe(Path(results_dir) / JOURNAL))
    return result.records


def read_checked(results_dir: str | Path) -> JournalRead:
    """All usable records, in order, plus ``(line_number, reason)`` (1-based) for every line that was left out.

    A line is left out when it is not UTF-8, not JSON, not a JSON object, or lacks the record shape (``trial_id``
    str, ``config`` and ``metrics`` objects, ``error`` null or str). Blank lines carry nothing and are passed over.
    A missing journal is an empty one.
    """
    path = Path(results_dir) / JOURNAL
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return JournalRead([], [])
    lines = raw.split(b"\n")
    last = len(lines) if raw.endswith(b"\n") else len(lines) - 1  # index of a last line with no newline, if any
    records: list[dict] = []
    skipped: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record, problem = _parse(line)
        if problem is None:
            records.append(record)
        else:
            if number - 1 == last:
                problem += " (last line, no newline: cut short by a kill?)"
            skipped.append((number, problem))
    return JournalRead(records, skipped)


def _parse(line: bytes) -> tuple[dict | None, str | None]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    if "\x00" in text:
        return None, "binary data (NUL bytes)"
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; so is an over-long integer
        return None, f"not JSON ({str(exc).split(':')[0]})"
    return (record, None) if (problem := _shape_problem(record)) is None else (None, problem)


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def _kind(value) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _shape_problem(record) -> str | None:
    if not isinstance(record, dict):
        return f"a JSON {_kind(record)}, expected an object"
    for key, types, expected in (("trial_id", str, "a string"), ("config", dict, "an object"),
                                 ("metrics", dict, "an object")):
        if key not in record:
            return f"no {key!r}"
        if not isinstance(record[key], types):
            return f"{key!r} is a JSON {_kind(record[key])}, expected {expected}"
    if not record["trial_id"]:
        return "'trial_id' is empty"
    if record.get("error") is not None and not isinstance(record["error"], str):
        return f"'error' is a JSON {_kind(record['error'])}, expected a string or null"
    return None


def point_key(config: dict) -> tuple:
    """Identity of a sampled point (for matching re-sampled or re-enqueued points to finished ones)."""
    point = config.get("point", config)
    return tuple(sorted((k, point[k]) for k in point if not k.endswith("_index")))
