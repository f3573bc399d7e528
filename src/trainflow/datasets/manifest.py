"""The cache manifest: what was fetched from where, with sizes, source versions and checksums."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from trainflow.datasets.errors import DatasetError
from trainflow.datasets.layout import MANIFEST_NAME, UNPACKED_DIR, cached_path, object_problem
from trainflow.storage import atomic_write_bytes
from trainflow.storage.names import clash_problem, shown

log = logging.getLogger(__name__)
_SHA256_HEX = 64


@dataclass(slots=True)
class FileEntry:
    """One cached file: its source version (`source_tag`) and the sha256 of the bytes we hold.

    Slotted: a manifest holds one per file, and a dict per entry was most of a large sync's memory.
    """

    size: int
    sha256: str
    source_tag: str
    etag: str | None
    mtime: float | None
    fetched_at: float
    local_mtime_ns: int = 0  # of our copy when last verified: unchanged stat means unchanged bytes

    def __post_init__(self) -> None:
        if not _is_count(self.size) or not _is_count(self.local_mtime_ns):
            raise TypeError("size and local_mtime_ns must be non-negative integers")
        if not isinstance(self.sha256, str) or len(self.sha256) != _SHA256_HEX or not isinstance(self.source_tag, str):
            raise TypeError("sha256 and source_tag must be text, sha256 64 hex digits")
        if not isinstance(self.etag, str | None) or not _is_time(self.fetched_at) or not _is_time(self.mtime, True):
            raise TypeError("etag must be text, fetched_at and mtime times")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_time(value: object, optional: bool = False) -> bool:
    """A Unix time that the standard library can format (finite, from 1970 to year 5000)."""
    if value is None:
        return optional
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 95_617_584_000


@dataclass
class SyncStats:
    syncs: int = 0
    bytes_downloaded: int = 0
    bytes_saved: int = 0
    last_sync: float | None = None
    last_sync_bytes: int = 0

    def __post_init__(self) -> None:
        counts = (self.syncs, self.bytes_downloaded, self.bytes_saved, self.last_sync_bytes)
        if not all(_is_count(n) for n in counts) or not _is_time(self.last_sync, True):
            raise TypeError("sync statistics must be non-negative integers and last_sync a time")


@dataclass
class Manifest:
    name: str
    source: str
    files: dict[str, FileEntry] = field(default_factory=dict)
    stats: SyncStats = field(default_factory=SyncStats)
    created_at: float = field(default_factory=time.time)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files.values())

    def to_json(self) -> str:
        return self.to_json_bytes().decode()

    def to_json_bytes(self) -> bytes:
        # Saved about once a second during a sync: dataclasses.asdict and json took ~1 s for 10,000 files.
        # orjson writes the slotted entries itself, their fields in declaration order.
        raw = {
            "name": self.name,
            "source": self.source,
            "files": self.files,
            "stats": vars(self.stats),
            "created_at": self.created_at,
        }
        return orjson.dumps(raw, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        if not isinstance(raw.get("source"), str) or not isinstance(raw.get("files", {}), dict):
            raise TypeError("source must be text and files a mapping")
        if not _is_time(raw.get("created_at", 0)):
            raise TypeError("created_at must be a time")
        return cls(
            name=raw["name"],
            source=raw["source"],
            files={k: FileEntry(**v) for k, v in raw.get("files", {}).items()},
            stats=SyncStats(**raw.get("stats", {})),
            created_at=raw.get("created_at", time.time()),
        )

    def save(self, directory: Path) -> None:
        atomic_write_bytes(directory / MANIFEST_NAME, self.to_json_bytes())


def load_manifest(directory: Path) -> Manifest | None:
    """The manifest in `directory`, or None if there is none or it is unreadable (then we refetch).

    A manifest naming a file that could not have been cached (a path leaving the directory, say) was
    altered outside trainflow: DatasetError, before anything acts on it.
    """
    path = cached_path(directory, MANIFEST_NAME)
    try:
        manifest = Manifest.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring unreadable cache manifest %s (%s); the dataset will be fetched again", path, exc)
        return None
    except OSError as exc:
        raise DatasetError(
            f"cannot read cache manifest {path} ({exc.strerror}): remove the dataset "
            f"(trainflow data rm {directory.name}) and sync again"
        ) from None
    check_files(manifest, path)
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
