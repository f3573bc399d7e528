"""The dataset cache: one complete, verified local copy per dataset, fetched once and reused.

This is the role Kube Volume Controller played in the Kubeflow example. A sync lists the source,
keeps every cached file whose source version and sha256 still match, and fetches only the rest,
each into a temp file renamed into place, under a file lock so concurrent workflows share one
download.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from trainflow.datasets.errors import DatasetError
from trainflow.datasets.manifest import FileEntry, Manifest, load_manifest, sha256_file
from trainflow.datasets.observer import SyncObserver
from trainflow.storage import ObjectInfo, SourceUnreachable, StorageOptions, Store, canonical_url, open_store

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PARALLEL_DOWNLOADS = 8
UNPACKED_DIR = ".unpacked"


@dataclass
class SyncResult:
    """What one sync did: `offline` means the source was unreachable and the cache was used."""

    name: str
    path: Path
    downloaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bytes_downloaded: int = 0
    bytes_saved: int = 0
    offline: bool = False


def default_name(source: str) -> str:
    """A cache name for a source URL: its last path part plus a short hash, so sources never collide."""
    last = re.sub(r"[^A-Za-z0-9._-]", "-", source.rstrip("/").rsplit("/", 1)[-1]).strip(".-") or "dataset"
    return f"{last[:48]}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise DatasetError(
            f"invalid dataset name '{name}': use letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


class DatasetCache:
    """Datasets under `root` (normally `$TRAINFLOW_HOME/cache/datasets`)."""

    def __init__(self, root: Path, options: StorageOptions | None = None) -> None:
        self.root = root
        self.options = options

    def path(self, name: str) -> Path:
        return self.root / check_name(name)

    def lock(self, name: str) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / f".{check_name(name)}.lock"))

    def manifest(self, name: str) -> Manifest | None:
        return load_manifest(self.path(name))

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def remove(self, name: str) -> bool:
        """Drop a cached dataset; False if there was none."""
        path = self.path(name)
        with self.lock(name):
            if not path.exists():
                return False
            shutil.rmtree(path)
        return True

    def ensure(
        self,
        source: str,
        name: str,
        files: Sequence[str] | None = None,
        observer: SyncObserver | None = None,
        verify: bool = False,
    ) -> SyncResult:
        """Make `name` a complete copy of `source` (just `files` of it, if given) and say what it took.

        Cached files whose stat is unchanged since they were verified are trusted; `verify=True`
        re-hashes every file.
        """
        observer = observer or SyncObserver()
        source = canonical_url(source)
        store = open_store(source, self.options)
        directory = self.path(name)
        with self.lock(name):
            directory.mkdir(parents=True, exist_ok=True)
            manifest = load_manifest(directory)
            if manifest is None or manifest.source != source:
                manifest = Manifest(name=name, source=source)
            try:
                remote = store.list(files)
            except SourceUnreachable as exc:
                return self._offline(directory, manifest, files, exc)
            if not remote:
                raise DatasetError(f"no files at {source}: check the URL (is the data uploaded?)")
            result = _Sync(store, directory, manifest, observer, verify).run(remote)
        return result

    def _offline(
        self, directory: Path, manifest: Manifest, files: Sequence[str] | None, exc: SourceUnreachable
    ) -> SyncResult:
        wanted = list(files) if files is not None else list(manifest.files)
        intact = bool(wanted) and all(
            n in manifest.files and _verified(directory / n, manifest.files[n]) for n in wanted
        )
        if not intact:
            raise exc
        log.warning("%s; using the cached copy of %s from %s", exc, manifest.name, _ago(manifest.stats.last_sync))
        saved = sum(manifest.files[n].size for n in wanted)
        return SyncResult(manifest.name, directory, unchanged=wanted, bytes_saved=saved, offline=True)


class _Sync:
    """One sync of a locked cache directory against a listed source."""

    def __init__(self, store: Store, directory: Path, manifest: Manifest, observer: SyncObserver, verify: bool) -> None:
        self.verify = verify
        self.store = store
        self.directory = directory
        self.manifest = manifest
        self.observer = observer
        self.result = SyncResult(manifest.name, directory)

    def run(self, remote: list[ObjectInfo]) -> SyncResult:
        todo = []
        for obj in remote:
            entry = self.manifest.files.get(obj.name)
            if entry and entry.source_tag == obj.version_tag and _verified(self.directory / obj.name, entry, self.verify):
                self.result.unchanged.append(obj.name)
                self.result.bytes_saved += obj.size
            else:
                if entry and entry.source_tag == obj.version_tag:
                    log.warning("cached %s is damaged (checksum mismatch); fetching it again", obj.name)
                    self.result.repaired.append(obj.name)
                todo.append(obj)
        self._drop_stale({o.name for o in remote})
        self.observer.planned(len(todo), sum(o.size for o in todo))
        failures: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=min(_PARALLEL_DOWNLOADS, max(1, len(todo)))) as pool:
            futures = {pool.submit(self._fetch, obj): obj for obj in todo}
            for future in as_completed(futures):
                obj = futures[future]
                try:
                    entry = future.result()
                except BaseException as exc:  # keep what the other downloads fetched, then fail
                    failures.append(exc)
                    continue
                self.manifest.files[obj.name] = entry
                self.manifest.save(self.directory)
                self.result.downloaded.append(obj.name)
                self.result.bytes_downloaded += entry.size
                self.observer.file_done(obj.name)
        if failures:
            raise failures[0]
        self.result.downloaded.sort()
        stats = self.manifest.stats
        stats.syncs += 1
        stats.bytes_downloaded += self.result.bytes_downloaded
        stats.bytes_saved += self.result.bytes_saved
        stats.last_sync = time.time()
        stats.last_sync_bytes = self.result.bytes_downloaded
        self.manifest.save(self.directory)
        _prune_unpacked(self.directory, self.manifest)
        return self.result

    def _drop_stale(self, present: set[str]) -> None:
        for gone in sorted(set(self.manifest.files) - present):
            (self.directory / gone).unlink(missing_ok=True)
            del self.manifest.files[gone]
            self.result.removed.append(gone)

    def _fetch(self, obj: ObjectInfo) -> FileEntry:
        dest = self.directory / obj.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            self.store.download(obj.name, tmp, self.observer.bytes_done)
            size = tmp.stat().st_size
            if obj.size >= 0 and size != obj.size:
                raise SourceUnreachable(
                    f"download of {self.store.object_url(obj.name)} was cut short ({size} of {obj.size} bytes): try again"
                )
            digest = sha256_file(tmp)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return FileEntry(size, digest, obj.version_tag, obj.etag, obj.mtime, time.time(), dest.stat().st_mtime_ns)


def unpacked_path(directory: Path, name: str) -> Path:
    """Where the decompressed copy of cached `name` lives, keyed by content so it is never stale."""
    manifest = load_manifest(directory)
    entry = manifest.files.get(name) if manifest else None
    if entry:
        key = entry.sha256[:16]
    else:  # a plain folder of IDX files, not a cache entry
        st = (directory / name).stat()
        key = f"{st.st_size}-{st.st_mtime_ns}"
    return directory / UNPACKED_DIR / f"{key}-{Path(name).stem}"


def _prune_unpacked(directory: Path, manifest: Manifest) -> None:
    """Drop decompressed copies of files that are no longer (or no longer so) in the cache."""
    unpacked = directory / UNPACKED_DIR
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
    if st.st_size != entry.size:
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
