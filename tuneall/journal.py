"""The trial journal: every finished trial appended to ``journal.jsonl`` and fsynced the moment it finishes.

Ray Tune's own experiment state is saved every few seconds at best, so a driver killed right after a trial ends can
lose it; the journal is what ``--resume`` and the trials table are rebuilt from.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

JOURNAL = "journal.jsonl"


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
    """Append one trial record and force it to disk before returning."""
    path = Path(results_dir) / JOURNAL
    line = json.dumps(_jsonable(record), separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read(results_dir: str | Path) -> list[dict]:
    """All complete records, in order; a last line cut short by a kill is ignored."""
    path = Path(results_dir) / JOURNAL
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def point_key(config: dict) -> tuple:
    """Identity of a sampled point (for matching re-sampled or re-enqueued points to finished ones)."""
    point = config.get("point", config)
    return tuple(sorted((k, point[k]) for k in point if not k.endswith("_index")))
