"""The cache manifest: what was fetched from where, with sizes, source versions and checksums."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trainflow.storage import atomic_write_bytes

log = logging.getLogger(__name__)
MANIFEST_NAME = "manifest.json"


@dataclass
class FileEntry:
    """One cached file: its source version (`source_tag`) and the sha256 of the bytes we hold."""

    size: int
    sha256: str
    source_tag: str
    etag: str | None
    mtime: float | None
    fetched_at: float
    local_mtime_ns: int = 0  # of our copy when last verified: unchanged stat means unchanged bytes


@dataclass
class SyncStats:
    syncs: int = 0
    bytes_downloaded: int = 0
    bytes_saved: int = 0
    last_sync: float | None = None
    last_sync_bytes: int = 0


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
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        return cls(
            name=raw["name"],
            source=raw["source"],
            files={k: FileEntry(**v) for k, v in raw.get("files", {}).items()},
            stats=SyncStats(**raw.get("stats", {})),
            created_at=raw.get("created_at", time.time()),
        )

    def save(self, directory: Path) -> None:
        atomic_write_bytes(directory / MANIFEST_NAME, self.to_json().encode())


def load_manifest(directory: Path) -> Manifest | None:
    """The manifest in `directory`, or None if there is none or it is unreadable (then we refetch)."""
    path = directory / MANIFEST_NAME
    try:
        return Manifest.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable cache manifest %s (%s); the dataset will be fetched again", path, exc)
        return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
