"""Large files copied on this machine, hashed after their copy on a thread beside the rest of the sync.

Copied by the kernel without hashing on the way, a 220 MB table takes 0.07 s instead of 0.25 s; its sha256 (0.17 s)
is then taken from the copy while the sync goes on (other copies, then the dataset's arrays built from it, which
leave a core to spare). Until its hash is known a file has no entry in the saved manifest, so a sync killed before
then fetches it again; in the manifest's table it holds a placeholder entry, never saved, that `entries` replaces.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from trainflow.datasets.errors import DatasetError
from trainflow.datasets.file_entry import FileEntry

HASH_LATER_BYTES = 16 << 20  # smaller files are hashed as they are copied: their second pass would save nothing
_PLACEHOLDER = "0" * 64
_READ = 1 << 20
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True)
class Unhashed:
    """A file copied into the cache whose sha256 is yet to be taken: its manifest entry but for that."""

    path: Path
    size: int
    source_tag: str
    etag: str | None
    mtime: float | None
    fetched_at: float
    local_mtime_ns: int

    def entry(self, sha256: str = _PLACEHOLDER) -> FileEntry:
        return FileEntry(
            self.size, sha256, self.source_tag, self.etag, self.mtime, self.fetched_at, self.local_mtime_ns
        )


class LaterHashes:
    """The files a sync copied without hashing, each hashed in turn on one thread of its own from when it is added."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._files: dict[str, tuple[Unhashed, Future[str]]] = {}
        self._stop = threading.Event()

    def __bool__(self) -> bool:
        return bool(self._files)

    def add(self, name: str, file: Unhashed) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="trainflow-hash")
        self._files[name] = (file, self._pool.submit(self._hash, name, file))

    def placeholders(self) -> Iterator[tuple[str, FileEntry]]:
        """Each file's entry with a digest of zeros: its place in the manifest's table while it is hashed."""
        for name, (file, _) in self._files.items():
            yield name, file.entry()

    def entries(self) -> Iterator[tuple[str, FileEntry]]:
        """Each file's entry, once its hash is taken (waited for); DatasetError where a copy cannot be read back."""
        for name, (file, hashed) in self._files.items():
            yield name, file.entry(hashed.result())

    def close(self) -> None:
        """Stop the hashes still under way and wait for their thread (a failed sync's, say)."""
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _hash(self, name: str, file: Unhashed) -> str:
        digest = hashlib.sha256()
        buffer = bytearray(_READ)
        try:
            with open(os.open(file.path, os.O_RDONLY | _NO_FOLLOW), "rb", buffering=0) as f:
                while read := f.readinto(buffer):
                    if self._stop.is_set():
                        raise DatasetError(f"hashing {name} was stopped")  # no one waits for this result
                    digest.update(memoryview(buffer)[:read])
                st = os.fstat(f.fileno())
        except OSError as exc:
            raise DatasetError(
                f"cannot read {name} back from the dataset cache ({exc.strerror or exc}): sync again"
            ) from None
        if (st.st_size, st.st_mtime_ns) != (file.size, file.local_mtime_ns):
            raise DatasetError(f"{name} was changed in the dataset cache while it was synced: sync again")
        return digest.hexdigest()
