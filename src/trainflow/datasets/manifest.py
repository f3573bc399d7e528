"""The cache manifest: what was fetched from where, with sizes, source versions and checksums."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from trainflow.datasets.errors import DatasetError
from trainflow.datasets.file_entry import FileEntry, is_count, is_time
from trainflow.datasets.file_table import FileTable
from trainflow.datasets.layout import MANIFEST_NAME, UNPACKED_DIR, cached_path, object_problem
from trainflow.datasets.manifest_journal import STRUCK, read_journal
from trainflow.storage.atomic import atomic_write_chunks
from trainflow.storage.names import clash_problem, shown

log = logging.getLogger(__name__)
_CHUNK_FILES = 1024  # entries per piece of the manifest's JSON as it is written (~300 kB)


@dataclass
class SyncStats:
    syncs: int = 0
    bytes_downloaded: int = 0
    bytes_saved: int = 0
    last_sync: float | None = None
    last_sync_bytes: int = 0

    def __post_init__(self) -> None:
        counts = (self.syncs, self.bytes_downloaded, self.bytes_saved, self.last_sync_bytes)
        if not all(is_count(n) for n in counts) or not is_time(self.last_sync, True):
            raise TypeError("sync statistics must be non-negative integers and last_sync a time")


@dataclass
class Manifest:
    name: str
    source: str
    files: FileTable = field(default_factory=FileTable)  # name -> FileEntry, off the Python heap
    stats: SyncStats = field(default_factory=SyncStats)
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not isinstance(self.files, FileTable):  # a dict of entries, say
            self.files = FileTable(self.files)

    @property
    def total_size(self) -> int:
        return self.files.total_size()

    def to_dict(self) -> dict[str, object]:
        """The manifest as plain data, in the order of its fields (what `data describe -o json` shows)."""
        files = {name: entry.fields() for name, entry in self.files.sorted_items()}
        return {
            "name": self.name,
            "source": self.source,
            "files": files,
            "stats": vars(self.stats).copy(),
            "created_at": self.created_at,
        }

    def to_json(self) -> str:
        return self.to_json_bytes().decode()

    def to_json_bytes(self) -> bytes:
        return b"".join(self.json_chunks())

    def json_chunks(self) -> Iterator[bytes]:
        """The manifest's JSON (keys sorted, an entry a line) in pieces, so a large one is never whole in memory."""
        head = {"created_at": self.created_at, "name": self.name, "source": self.source, "stats": vars(self.stats)}
        yield b'{\n  "created_at": %s,\n  "files": {' % orjson.dumps(head["created_at"])
        items = self.files.sorted_items()
        left = len(self.files)
        while left:
            piece = list(itertools.islice(items, _CHUNK_FILES))
            left -= len(piece)
            yield b",".join(
                b"\n    %s: %s" % (orjson.dumps(n), orjson.dumps(e.fields(), option=orjson.OPT_SORT_KEYS))
                for n, e in piece
            ) + (b"," if left else b"")
        rest = {k: head[k] for k in ("name", "source", "stats")}
        yield b"\n  },\n  " + orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)[1:-1] + b"\n}\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        raw = json.loads(text)
        if not isinstance(raw.get("source"), str) or not isinstance(raw.get("files", {}), dict):
            raise TypeError("source must be text and files a mapping")
        if not is_time(raw.get("created_at", 0)):
            raise TypeError("created_at must be a time")
        return cls(
            name=raw["name"],
            source=raw["source"],
            files=FileTable((k, FileEntry(**v)) for k, v in raw.pop("files", {}).items()),
            stats=SyncStats(**raw.get("stats", {})),
            created_at=raw.get("created_at", time.time()),
        )

    def save(self, directory: Path) -> None:
        atomic_write_chunks(directory / MANIFEST_NAME, self.json_chunks())


def load_manifest(directory: Path) -> Manifest | None:
    """The manifest in `directory` with its journal replayed, or None if there is none or it is unreadable
    (then we refetch).

    A manifest naming a file that could not have been cached (a path leaving the directory, say) was
    altered outside trainflow: DatasetError, before anything acts on it.
    """
    path = cached_path(directory, MANIFEST_NAME)
    try:
        manifest: Manifest | None = Manifest.from_json(path.read_bytes())
    except FileNotFoundError:
        manifest = None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring unreadable cache manifest %s (%s); the dataset will be fetched again", path, exc)
        manifest = None
    except OSError as exc:
        raise DatasetError(
            f"cannot read cache manifest {path} ({exc.strerror}): remove the dataset "
            f"(trainflow data rm {directory.name}) and sync again"
        ) from None
    manifest = _replayed(directory, manifest)
    if manifest is not None:
        check_files(manifest, path)
    return manifest


def _replayed(directory: Path, manifest: Manifest | None) -> Manifest | None:
    """`manifest` with the entries of the journal of a sync that did not finish (newer than the manifest)."""
    journal = read_journal(directory)
    if journal is None:
        return manifest
    header, entries = journal
    if manifest is None or manifest.source != header["source"]:  # that sync was of another source
        manifest = Manifest(name=directory.name, source=header["source"])
    for name, fields in entries:
        if fields == {STRUCK: True}:
            manifest.files.pop(name, None)
            continue
        try:
            manifest.files[name] = FileEntry(**fields)
        except (TypeError, ValueError) as exc:
            log.warning("left out the manifest journal's entry for %s (%s); it is fetched again", shown(name), exc)
    return manifest


def check_files(manifest: Manifest, path: Path) -> None:
    """DatasetError naming the first file of `manifest` (read from `path`) that cannot be a cached file."""
    found = [(name, object_problem(name)) for name in manifest.files]
    found.append(clash_problem(manifest.files) or ("", None))
    for name, problem in found:
        if problem:
            raise DatasetError(
                f"cache manifest {path} lists {shown(name)}, which {problem}: the manifest was altered outside "
                f"trainflow; remove the dataset (trainflow data rm {path.parent.name}) and sync again"
            )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
