"""Fetching a sync's objects into the dataset directory, each hashed on its way into a temp file renamed into place
(a large file the store copies on this machine is hashed later: `later_hashes`).

Objects go in batches (many small files, or one large one) to a few threads: a future and a wait per
file cost more than copying a small image. Each folder is made and checked once per sync, not once
per file.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from array import array
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from trainflow.datasets.later_hashes import HASH_LATER_BYTES, Unhashed
from trainflow.datasets.layout import PART_SUFFIX, cached_path, write_failure
from trainflow.datasets.manifest import FileEntry
from trainflow.datasets.observer import SyncObserver
from trainflow.storage import ObjectInfo, SourceUnreachable, Store

_BATCH_FILES = 64
_BATCH_BYTES = 1 << 20
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)

Fetched = tuple[ObjectInfo, FileEntry | Unhashed | BaseException]
_ENCODING = ("utf-8", "surrogatepass")


class ObjectQueue:
    """The objects a sync is to fetch, in order, held in flat buffers (~40 bytes an object instead of ~190 as
    `ObjectInfo`s): the listing's objects can all be freed before the copies start."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._names = bytearray()
        self._name_ends = array("q")
        self._sizes = array("q")
        self._mtimes = array("d")  # NaN: none
        self._etags: list[str | None] | None = None  # made on the first object with an ETag
        self._next = 0

    def append(self, obj: ObjectInfo) -> None:
        self._names += obj.name.encode(*_ENCODING)
        self._name_ends.append(len(self._names))
        self._sizes.append(obj.size)
        self._mtimes.append(math.nan if obj.mtime is None else obj.mtime)
        if obj.etag is not None and self._etags is None:
            self._etags = [None] * (len(self._sizes) - 1)
        if self._etags is not None:
            self._etags.append(obj.etag)

    def __len__(self) -> int:
        return len(self._sizes) - self._next

    @property
    def total_bytes(self) -> int:
        """The bytes of the objects left to fetch (those of unknown size not counted)."""
        return sum(size for size in self._sizes[self._next :] if size > 0)

    def popleft(self) -> ObjectInfo:
        i = self._next
        if i >= len(self._sizes):
            raise IndexError("no object left to fetch")
        self._next += 1
        name = self._names[self._name_ends[i - 1] if i else 0 : self._name_ends[i]].decode(*_ENCODING)
        mtime = self._mtimes[i]
        etag = self._etags[i] if self._etags is not None else None
        obj = ObjectInfo(name, self._sizes[i], etag, None if math.isnan(mtime) else mtime)
        if self._next == len(self._sizes):  # emptied: its buffers go now, not when the sync's caller drops it
            self._clear()
        return obj


class Fetcher:
    """Fetches objects of `store` into the locked dataset `directory`.

    With `hash_later` a large file the store copies on this machine is copied by the kernel and hashed afterwards;
    without it (a `--verify` sync) every file is hashed from the bytes read from the source, as they are written.
    """

    def __init__(self, store: Store, directory: Path, observer: SyncObserver, hash_later: bool = True) -> None:
        self.store = store
        self.hash_later = hash_later
        self.directory = directory
        self.observer = observer
        self._folders: dict[str, Path] = {}  # made and checked for links in this sync
        self._folder_lock = threading.Lock()
        self._temp_names = itertools.count()

    def fetched(self, todo: ObjectQueue) -> Iterator[list[Fetched]]:
        """Each finished batch: its objects with their cache entries, or the exception that stopped each.

        A few batches are in flight at a time and `todo` is emptied as they are made, so memory does not
        grow with the number of files.
        """
        threads = self.store.download_threads if len(todo) > 1 else 1  # asked only where it matters: ~25 ms locally
        batches = _batches(todo, min(_BATCH_FILES, max(1, len(todo) // (4 * threads))))
        running: set[Future[list[Fetched]]] = set()
        with ThreadPoolExecutor(max_workers=min(threads, max(1, len(todo)))) as pool:
            while True:
                for batch in itertools.islice(batches, 2 * threads - len(running)):
                    running.add(pool.submit(self._fetch_batch, batch))
                if not running:
                    return
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()

    def _fetch_batch(self, batch: list[ObjectInfo]) -> list[Fetched]:
        results: list[Fetched] = []
        for obj in batch:
            try:
                results.append((obj, self.fetch(obj)))
            except BaseException as exc:  # noqa: BLE001 - the caller keeps what the others fetched, then fails
                results.append((obj, exc))
        return results

    def fetch(self, obj: ObjectInfo) -> FileEntry | Unhashed:
        """One object into its place, through a temp file beside it; its entry for the manifest (a large file the
        store copies on this machine: all of it but the sha256, taken later)."""
        parent, _, base = obj.name.rpartition("/")
        folder = self._folder(parent, obj.name)
        dest = folder / base
        if os.path.islink(dest):
            cached_path(self.directory, obj.name)  # DatasetError naming the link
        tmp = folder / f".{base}.{os.getpid()}-{next(self._temp_names)}{PART_SUFFIX}"
        try:  # the store opens it again by name: made here so that nothing else can be there
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW, 0o600))
        except OSError as exc:
            raise write_failure(self.directory, obj.name, exc) from None
        try:
            digest: str | None = None
            later = self.hash_later and obj.size >= HASH_LATER_BYTES
            if not (later and self.store.copy_unhashed(obj.name, tmp, self.observer.bytes_done)):
                digest = self.store.download(obj.name, tmp, self.observer.bytes_done)
            st = os.stat(tmp)
            if obj.size >= 0 and st.st_size != obj.size:
                url, listed = self.store.object_url(obj.name), f"{obj.size} bytes when listed"
                raise SourceUnreachable(
                    f"{url} changed while it was synced ({st.st_size} bytes copied, {listed}): try again"
                    if st.st_size > obj.size
                    else f"download of {url} was cut short ({st.st_size} of {obj.size} bytes): try again"
                )
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise write_failure(self.directory, obj.name, exc) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if digest is None:
            return Unhashed(dest, st.st_size, obj.version_tag, obj.etag, obj.mtime, time.time(), st.st_mtime_ns)
        return FileEntry(st.st_size, digest, obj.version_tag, obj.etag, obj.mtime, time.time(), st.st_mtime_ns)

    def _folder(self, parent: str, name: str) -> Path:
        """The folder that holds `name`, made if missing, once nothing on the way is a symbolic link."""
        folder = self._folders.get(parent)
        if folder is not None:
            return folder
        with self._folder_lock:
            folder = cached_path(self.directory, parent) if parent else self.directory
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise write_failure(self.directory, name, exc) from None
            self._folders[parent] = folder
        return folder


def _batches(todo: ObjectQueue, files: int) -> Iterator[list[ObjectInfo]]:
    """`todo` in order (taken out of it), in batches of up to `files` files and `_BATCH_BYTES`; a larger file, or one
    of unknown size, alone (so large downloads run side by side, and a few small ones too: `files` keeps every thread
    busy)."""
    batch: list[ObjectInfo] = []
    size = 0
    while todo:
        obj = todo.popleft()
        weight = obj.size if obj.size >= 0 else _BATCH_BYTES
        if batch and (len(batch) == files or size + weight > _BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(obj)
        size += weight
    if batch:
        yield batch
