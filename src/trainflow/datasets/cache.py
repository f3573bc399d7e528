"""The dataset cache: one complete, verified local copy per dataset, fetched once and reused.

This is the role Kube Volume Controller played in the Kubeflow example. A sync lists the source,
keeps every cached file whose source version and sha256 still match, and fetches only the rest,
each into a temp file renamed into place, under a file lock so concurrent workflows share one
download.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from trainflow.datasets.descriptor import DatasetDescriptor, read_descriptor
from trainflow.datasets.errors import DataFormatError, DatasetError
from trainflow.datasets.fetch import Fetcher, ObjectQueue
from trainflow.datasets.file_table import NameList, TableNames
from trainflow.datasets.formats import FormatOptions
from trainflow.datasets.heap import large_blocks_mapped
from trainflow.datasets.later_hashes import LaterHashes, Unhashed
from trainflow.datasets.layout import (
    UNPACKED_DIR,
    cached_path,
    checked_directory,
    object_problem,
    remove_cached_file,
    remove_partial_files,
    write_failure,
)
from trainflow.datasets.listing import Listing
from trainflow.datasets.manifest import FileEntry, Manifest, load_manifest, sha256_file
from trainflow.datasets.manifest_journal import JOURNAL_NAME, Journal
from trainflow.datasets.observer import SyncObserver
from trainflow.datasets.readers import load_readers
from trainflow.storage import (
    ObjectInfo,
    SourceUnreachable,
    StorageOptions,
    Store,
    canonical_url,
    open_store,
)
from trainflow.storage.names import shown

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


@dataclass
class SyncResult:
    """What one sync did: `offline` means the source was unreachable and the cache was used."""

    name: str
    path: Path
    # No list of texts: a sync of 100,000 files kept ~8 MB of names here. The files downloaded or up to date are
    # named by their rows in the manifest's table (`TableNames`), the few others in one buffer each.
    downloaded: Sequence[str] = field(default_factory=NameList)
    unchanged: Sequence[str] = field(default_factory=NameList)
    repaired: NameList = field(default_factory=NameList)
    removed: NameList = field(default_factory=NameList)
    bytes_downloaded: int = 0
    bytes_saved: int = 0
    offline: bool = False
    descriptor: DatasetDescriptor | None = None  # None: the files are in no format trainflow recognises


def default_name(source: str) -> str:
    """A cache name for a source URL: its last path part plus a short hash, so sources never collide."""
    last = re.sub(r"[^A-Za-z0-9._-]", "-", source.rstrip("/").rsplit("/", 1)[-1])[:48].strip("._-") or "dataset"
    return f"{last}-{hashlib.sha256(source.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def check_name(name: str) -> str:
    """`name` if it can name a dataset directory (one plain path segment), else DatasetError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DatasetError(
            f"invalid dataset name {shown(str(name))}: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


class DatasetCache:
    """Datasets under `root` (normally `$TRAINFLOW_HOME/cache/datasets`)."""

    def __init__(self, root: Path, options: StorageOptions | None = None) -> None:
        self.root = root
        self.options = options

    def path(self, name: str) -> Path:
        return self.root / check_name(name)

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the dataset's lock: one sync or removal of a dataset at a time, across processes."""
        path = self.root / f".{check_name(name)}.lock"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(path))
            lock.acquire()
        except OSError as exc:  # filelock refuses a symbolic link in the lock's place, for one
            raise DatasetError(
                f"cannot lock dataset '{name}' at {path} ({exc.strerror or exc}): remove that file and try again"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def manifest(self, name: str) -> Manifest | None:
        return load_manifest(checked_directory(self.path(name)))

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def remove(self, name: str) -> bool:
        """Drop a cached dataset; False if there was none. A link in its place goes, never what it points to."""
        path = self.path(name)
        with self.lock(name):
            if path.is_symlink() or path.is_file():
                path.unlink()
                return True
            if not path.exists():
                return False
            shutil.rmtree(path)  # removes links inside, never follows them
        return True

    def ensure(
        self,
        source: str,
        name: str,
        files: Sequence[str] | None = None,
        observer: SyncObserver | None = None,
        verify: bool = False,
        options: FormatOptions | None = None,
    ) -> SyncResult:
        """Make `name` a complete copy of `source` (just `files` of it, if given) and say what it took.

        Cached files whose stat is unchanged since they were verified are trusted; `verify=True`
        re-hashes every file. An object whose name cannot be a file inside the dataset directory
        makes the whole sync a DatasetError before anything is written. Then the files are checked
        and described (see `prepare`); content that cannot be used is a DataFormatError and the
        dataset is removed from the cache.
        """
        observer = observer or SyncObserver()
        directory = self.path(name)
        if files is not None:
            files = _check_requested(files, source, name)
        source = canonical_url(source)
        store = open_store(source, self.options)
        with self.lock(name):
            manifest = load_manifest(checked_directory(directory))
            if manifest is None or manifest.source != source:
                manifest = Manifest(name=name, source=source)
            manifest.name = name
            sync = _Sync(store, directory, manifest, observer, verify)
            listing = Listing(store, files, name)
            try:
                with large_blocks_mapped():  # the manifest's growing buffers leave no holes the decode workers share
                    try:  # planned page by page as the store lists: the whole listing is never held
                        todo = sync.plan(listing)
                    except SourceUnreachable as exc:
                        return self._offline(directory, manifest, files, exc)
                    # What prepare imports (numpy, a table's readers) loads while the files are copied.
                    loading = load_readers(listing.suffixes) if todo else None
                    try:
                        result = sync.run(todo)
                    finally:
                        if loading is not None:
                            loading.join()  # prepare imports nothing beside it
                # Files still being hashed are recorded once the dataset's arrays are built beside them.
                settle = sync.settle if sync.later else None
                result.descriptor = _prepared(directory, manifest, result, options or FormatOptions(), settle)
            finally:
                sync.later.close()  # a failure leaves no hash running
        return result

    def _offline(
        self, directory: Path, manifest: Manifest, files: Sequence[str] | None, exc: SourceUnreachable
    ) -> SyncResult:
        wanted = list(files) if files is not None else list(manifest.files)
        intact = bool(wanted) and all(
            n in manifest.files and _verified(cached_path(directory, n), manifest.files[n]) for n in wanted
        )
        if not intact:
            raise exc
        log.warning("%s; using the cached copy of %s from %s", exc, manifest.name, _ago(manifest.stats.last_sync))
        saved = sum(manifest.files[n].size for n in wanted)
        return SyncResult(
            manifest.name,
            directory,
            unchanged=NameList(wanted),
            bytes_saved=saved,
            offline=True,
            descriptor=read_descriptor(directory),
        )


def _prepared(
    directory: Path,
    manifest: Manifest,
    result: SyncResult,
    options: FormatOptions,
    settle: Callable[[], None] | None = None,
) -> DatasetDescriptor | None:
    """The synced dataset's descriptor; on unusable content the dataset goes, so no half-made one is left."""
    from trainflow.datasets.prepare import prepare  # numpy and the array builders: loaded beside the copies

    try:
        return prepare(directory, manifest, options, settle)
    except DataFormatError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise DataFormatError(f"dataset '{result.name}': {exc} (the dataset was not kept in the cache)") from None


def _check_requested(files: Sequence[str], source: str, name: str) -> list[str]:
    """The file names asked for, once each; DatasetError, before any request, for one that cannot be cached."""
    for file in files:
        problem = object_problem(file)
        if problem:
            raise DatasetError(
                f"refusing file {shown(file)} of {source} for dataset '{name}': the name {problem}; "
                "name a file inside the source"
            )
    return list(dict.fromkeys(files))


class _Sync:
    """One sync of a locked cache directory against a listed source."""

    def __init__(self, store: Store, directory: Path, manifest: Manifest, observer: SyncObserver, verify: bool) -> None:
        self.verify = verify
        self.store = store
        self.directory = directory
        self.manifest = manifest
        self.observer = observer
        self.downloaded = TableNames(manifest.files)
        self.unchanged = TableNames(manifest.files)
        self.later = LaterHashes()
        self.result = SyncResult(manifest.name, directory, downloaded=self.downloaded, unchanged=self.unchanged)

    def plan(self, listing: Listing) -> ObjectQueue:
        """The objects to fetch, as they are listed; then clear what interrupted syncs left and drop the files the
        source no longer has. Nothing is written before the whole listing is checked."""
        cached_path(self.directory, UNPACKED_DIR)  # refuses a planted link before anything is written
        present: set[str] | None = set() if self.manifest.files else None  # a first sync drops nothing
        todo = self._plan(listing, present)
        listing.check()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_failure(self.directory, ".", exc) from None
        for leftover in remove_partial_files(self.directory):
            log.info("removed %s, left by an interrupted sync", leftover)
        if present is not None:
            self._drop_stale(present)
        return todo

    def run(self, todo: ObjectQueue) -> SyncResult:
        """Fetch `todo` (emptied as it goes), recording each file in the journal, then write the manifest once."""
        self.observer.planned(len(todo), todo.total_bytes)
        if (self.directory / JOURNAL_NAME).exists():  # a killed sync's, replayed into our manifest: fold it in
            self.manifest.save(self.directory)
            (self.directory / JOURNAL_NAME).unlink()
        journal = Journal(self.directory, self.manifest.name, self.manifest.source)
        try:
            self._fetch(todo, journal)
        except BaseException:
            journal.close(remove=False)  # a killed or failed sync keeps what it fetched
            raise
        stats = self.manifest.stats
        stats.syncs += 1
        stats.bytes_downloaded += self.result.bytes_downloaded
        stats.bytes_saved += self.result.bytes_saved
        stats.last_sync = time.time()
        stats.last_sync_bytes = self.result.bytes_downloaded
        self.manifest.save(self.directory)  # without the files still being hashed
        journal.close(remove=True)
        _prune_unpacked(self.directory, self.manifest)
        for name, entry in self.later.placeholders():  # in the table for preparing the dataset, never saved
            self.downloaded.append_row(self.manifest.files.put(name, entry))
        self.downloaded.sort()
        return self.result

    def settle(self) -> None:
        """The files hashed beside the rest of the sync recorded in the saved manifest (waits for their hashes)."""
        for name, entry in self.later.entries():
            self.manifest.files.put(name, entry)
        self.later.close()  # its thread ends: an image folder's decode forks workers next
        self.manifest.save(self.directory)

    def _fetch(self, todo: ObjectQueue, journal: Journal) -> None:
        failures: list[BaseException] = []
        for batch in Fetcher(self.store, self.directory, self.observer, hash_later=not self.verify).fetched(todo):
            for obj, entry in batch:
                if isinstance(entry, BaseException):  # keep what the other downloads fetched, then fail
                    failures.append(entry)
                    continue
                if isinstance(entry, Unhashed):  # its old entry goes: the file's bytes are no longer those it names
                    self.manifest.files.pop(obj.name, None)
                    journal.strike(obj.name)
                    self.later.add(obj.name, entry)
                else:
                    self.downloaded.append_row(self.manifest.files.put(obj.name, entry))
                    journal.add(obj.name, entry)
                self.result.bytes_downloaded += entry.size
                self.observer.file_done(obj.name)
            journal.flush()  # an interrupted sync keeps what it fetched; one write a batch, not a file
        if failures:
            raise failures[0]

    def _plan(self, listing: Iterable[ObjectInfo], present: set[str] | None) -> ObjectQueue:
        """The objects to fetch: those whose cached copy is missing, stale or damaged; `present` gets every name."""
        todo = ObjectQueue()  # flat: each page of the listing goes once planned
        files = self.manifest.files
        for obj in listing:
            if present is not None:
                present.add(obj.name)
            row = files.row(obj.name)
            entry = files.at(row) if row is not None else None
            verified_at = entry.local_mtime_ns if entry else 0
            if (
                row is not None
                and entry
                and entry.source_tag == obj.version_tag
                and _verified(cached_path(self.directory, obj.name), entry, self.verify)
            ):
                if entry.local_mtime_ns != verified_at:  # the table holds a copy of the entry: store it back
                    files.put(obj.name, entry)
                self.unchanged.append_row(row)
                self.result.bytes_saved += obj.size
            else:
                if entry and entry.source_tag == obj.version_tag:
                    log.warning("cached %s is damaged (checksum mismatch); fetching it again", obj.name)
                    self.result.repaired.append(obj.name)
                todo.append(obj)
        return todo

    def _drop_stale(self, present: set[str]) -> None:
        for gone in sorted(set(self.manifest.files) - present):
            try:
                remove_cached_file(self.directory, gone)
            except OSError as exc:
                raise write_failure(self.directory, gone, exc) from None
            del self.manifest.files[gone]
            self.result.removed.append(gone)


def _prune_unpacked(directory: Path, manifest: Manifest) -> None:
    """Drop decompressed copies of files that are no longer (or no longer so) in the cache."""
    unpacked = cached_path(directory, UNPACKED_DIR)
    if not unpacked.is_dir():
        return
    keep = {f"{e.sha256[:16]}-{Path(n).stem}" for n, e in manifest.files.items()}
    for path in unpacked.iterdir():
        if path.name not in keep:
            path.unlink(missing_ok=True)


def _verified(path: Path, entry: FileEntry, full: bool = True) -> bool:
    """True if our copy still has the recorded bytes.

    With `full=False` a file whose size and mtime are as recorded is trusted without hashing (as git
    and rsync do); any write, truncation or replacement changes the mtime and forces the sha256 check.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size:
        return False
    if not full and entry.local_mtime_ns and st.st_mtime_ns == entry.local_mtime_ns:
        return True
    if sha256_file(path) != entry.sha256:
        return False
    entry.local_mtime_ns = st.st_mtime_ns
    return True


def _ago(ts: float | None) -> str:
    if ts is None:
        return "an earlier sync"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
