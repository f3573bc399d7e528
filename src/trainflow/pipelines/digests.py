"""Content digests of files and folders: sha256 of every byte, streamed, hidden files included.

Hashing a large file costs its I/O, never its size in memory. `DigestMemo` lets the local runner skip
re-reading files it hashed before: it remembers a file's digest with its (size, mtime_ns, ctime_ns,
inode) and uses the entry only while all four match and the file had been left alone for a few
seconds when it was hashed (a write in the same timestamp tick would otherwise go unseen).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "sha256:"
HashFile = Callable[[Path], str]
_SETTLED_NS = 2_000_000_000  # a file unmodified this long before it was hashed cannot change within one tick
_MEMO_MIN_BYTES = 64 * 1024  # smaller files are hashed again rather than looked up on disk


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's content, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def tree_digest(path: Path, hash_file: HashFile = file_sha256) -> str:
    """`sha256:` over the name and content of a file, or of every file under a folder (hidden ones too).

    A symlink inside a folder counts by where it points (not followed: it may lead outside, or round).
    """
    h = hashlib.sha256()
    for name, kind, value in _entries(path, hash_file):
        h.update(f"{name}\0{kind}\0{value}\0".encode("utf-8", "surrogateescape"))
    return f"{PREFIX}{h.hexdigest()}"


def _entries(path: Path, hash_file: HashFile) -> Iterator[tuple[str, str, str]]:
    if not path.is_dir():
        yield path.name, "file", hash_file(path)
        return
    for name, file in walk_files(path):
        if file.is_symlink():
            yield name, "link", os.readlink(file)
        elif file.is_file():
            yield name, "file", hash_file(file)


def walk_files(root: Path, skip_dir: Callable[[Path], bool] | None = None) -> Iterator[tuple[str, Path]]:
    """(relative name, path) of every file and symlink under `root`, in a fixed order.

    Symlinks to folders are listed, not entered; `skip_dir` says which folders not to enter at all.
    """
    for folder, dirs, files in os.walk(root):
        linked = [d for d in dirs if Path(folder, d).is_symlink()]
        dirs[:] = sorted(d for d in dirs if d not in linked and not (skip_dir and skip_dir(Path(folder, d))))
        for name in sorted([*files, *linked]):
            file = Path(folder, name)
            yield file.relative_to(root).as_posix(), file


class DigestMemo:
    """File digests remembered by stat in a SQLite file (`None`: in this process only); the content decides."""

    def __init__(self, db: Path | None = None) -> None:
        self.db = db
        self._seen: dict[str, tuple[tuple[int, ...], str]] = {}
        self._broken = False

    def __call__(self, path: Path) -> str:
        """The hex sha256 of `path`'s content, read again only if the file may have changed."""
        name = os.path.abspath(path)
        st = os.stat(name)
        stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        found = self._seen.get(name)
        if found is None and st.st_size >= _MEMO_MIN_BYTES:
            found = self._load(name)
        if found is not None and found[0] == stamp:
            return found[1]
        before = time.time_ns()
        value = file_sha256(Path(name))
        if before - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLED_NS:
            self._seen[name] = (stamp, value)
            if st.st_size >= _MEMO_MIN_BYTES:
                self._store(name, stamp, value)
        return value

    def _load(self, name: str) -> tuple[tuple[int, ...], str] | None:
        row = self._query("SELECT size, mtime_ns, ctime_ns, inode, digest FROM digests WHERE path = ?", (name,))
        if row is None:
            return None
        return tuple(int(str(v)) for v in row[:4]), str(row[4])

    def _store(self, name: str, stamp: tuple[int, ...], value: str) -> None:
        self._query("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?)", (name, *stamp, value))

    def _query(self, sql: str, args: tuple[object, ...]) -> tuple[object, ...] | None:
        """Run one statement; the memo only saves time, so a database that fails is left alone from then on."""
        if self.db is None or self._broken:
            return None
        try:
            self.db.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(self.db, timeout=5) as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
                    "ctime_ns INTEGER, inode INTEGER, digest TEXT)"
                )
                row: tuple[object, ...] | None = conn.execute(sql, args).fetchone()
            conn.close()
            return row
        except (OSError, sqlite3.Error) as exc:
            log.warning("file digest memo %s unusable (%s): hashing every file in full", self.db, exc)
            self._broken = True
            return None
