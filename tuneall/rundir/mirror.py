"""The working copy of a URI results directory and its two moves, pull and push (see :mod:`tuneall.rundir.storage`).

Files are compared by (size, mtime_ns): locally as last synced, at the URI as last listed. Only files this mirror
has synced are ever deleted at the URI, so what Ray Tune writes there itself is left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

OBJECT_STORES = ("S3FileSystem", "GcsFileSystem")  # no rename: a whole-object PUT is the atomic write
# Files that never leave the machine: locks (the run's, the member store's, Optuna's), the lease, temp files.
_SKIP = re.compile(r"(^|/)(tuneall\.lock|tuneall\.lease|[^/]*\.lock|\.[^/]*\.tmp[^/]*)$")
CHUNK = 8 << 20


@dataclass
class Mirror:
    """A URI results directory and its working copy on this machine (see the module docstring)."""

    uri: str  # the results directory's URI, query kept
    local: Path
    open_fs: Callable  # uri -> (pyarrow FileSystem, path inside it), called at first use
    _fs: object = None
    _root: str = ""
    known: dict = field(default_factory=dict)  # rel path -> (size, mtime_ns) of the local file as last synced
    remote: dict = field(default_factory=dict)  # rel path -> (size, mtime_ns) at the URI as last seen
    _dirs: set = field(default_factory=set)
    failing: bool = False  # the last push failed (said once; retried at every write)

    @property
    def fs(self):
        if self._fs is None:
            self._fs, self._root = self.open_fs(self.uri)
            self._root = self._root.rstrip("/")
        return self._fs

    @property
    def root(self) -> str:
        return self.fs and self._root

    @property
    def object_store(self) -> bool:
        return type(self.fs).__name__ in OBJECT_STORES

    def listing(self) -> dict[str, tuple[int, int]]:
        """rel path -> (size, mtime_ns) of every file under the URI (a missing directory is empty)."""
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.root, recursive=True, allow_not_found=True))
        n = len(self.root) + 1
        return {i.path[n:]: (i.size, i.mtime_ns or 0) for i in infos if i.type == pafs.FileType.File}

    def exists(self) -> bool:
        return any(not _SKIP.search(r) for r in self.listing())

    def pull(self, skip: tuple[str, ...] = ()) -> None:
        """Make the working copy equal to the URI (local-only files such as lock files are left alone; ``skip``:
        folders, as ``"member_store/"``, neither fetched nor touched)."""
        remote = {r: v for r, v in self.listing().items() if not _SKIP.search(r) and not r.startswith(skip)}
        gone = [r for r in _local_files(self.local) if r not in remote and not r.startswith(skip)]
        for rel in gone:
            (self.local / rel).unlink(missing_ok=True)
            self.known.pop(rel, None)
        _prune(self.local, {Path(self.local / r).parent for r in gone})
        for rel, stamp in remote.items():
            if self.remote.get(rel) == stamp and rel in self.known and _stat(self.local / rel) == self.known[rel]:
                continue  # unchanged on both sides since the last sync
            self._get(rel)
            self.known[rel], self.remote[rel] = _stat(self.local / rel), stamp
        for rel in set(self.remote) - set(remote):
            self.remote.pop(rel)

    def push(self, only: str | None = None) -> None:
        """Upload what changed locally (``only``: that one file), the journal last; delete at the URI what the run
        deleted locally (files this mirror had synced, never others such as Ray Tune's)."""
        if not self.local.is_dir():
            return
        files = _local_files(self.local) if only is None else {only: _stat(self.local / only)}
        order = sorted(files, key=lambda r: (r == "journal.jsonl", r))
        for rel in order:
            stamp = files[rel]
            if stamp is None or self.known.get(rel) == stamp:
                continue
            self._put(rel)
            self.known[rel] = stamp
            self.remote.pop(rel, None)  # its stamp at the URI is learnt at the next listing
        if only is None:
            for rel in [r for r in self.known if r not in files]:
                self.fs.delete_file(f"{self.root}/{rel}") if self._exists(rel) else None
                self.known.pop(rel)
                self.remote.pop(rel, None)

    def _exists(self, rel: str) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(f"{self.root}/{rel}").type != pafs.FileType.NotFound

    def _put(self, rel: str) -> None:
        dst = f"{self.root}/{rel}"
        parent_dir = dst.rpartition("/")[0]
        target = dst
        if not self.object_store:  # a temporary name, then a rename: readers never see half a file
            if parent_dir not in self._dirs:
                self.fs.create_dir(parent_dir, recursive=True)
                self._dirs.add(parent_dir)
            target = f"{parent_dir}/.{rel.rpartition('/')[2]}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with open(self.local / rel, "rb") as src, self.fs.open_output_stream(target) as out:
                shutil.copyfileobj(src, out, CHUNK)
        except FileNotFoundError:
            return  # deleted while we pushed (a lock or temp file of a trial): the next push sees
        if target != dst:
            if self._exists(rel):
                self.fs.delete_file(dst)
            self.fs.move(target, dst)

    def _get(self, rel: str) -> None:
        dst = self.local / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.parent / f".{dst.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with self.fs.open_input_stream(f"{self.root}/{rel}") as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _prune(root: Path, dirs: set[Path]) -> None:
    """Remove the folders in ``dirs`` (and their parents below ``root``) that deleting files left empty."""
    for d in sorted(dirs, key=lambda p: -len(p.parts)):
        while d != root and root in d.parents:
            try:
                d.rmdir()
            except OSError:
                break
            d = d.parent


def _local_files(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = Path(d) / n
            rel = p.relative_to(root).as_posix()
            if not _SKIP.search(rel) and (st := _stat(p)) is not None:
                out[rel] = st
    return out
