"""The cache manifest: what was fetched from where, with sizes, source versions and checksums."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from trainflow.datasets.errors import DatasetError
from trainflow.datasets.layout import MANIFEST_NAME, UNPACKED_DIR, cached_path, object_problem
from trainflow.datasets.manifest_journal import read_journal
from trainflow.storage.atomic import atomic_write_chunks
from trainflow.storage.base import version_tag
from trainflow.storage.names import clash_problem, shown

log = logging.getLogger(__name__)
_SHA256_HEX = 64
_PACKED = struct.Struct("<qqdd32s")  # size, local_mtime_ns, mtime (NaN: none), fetched_at, sha256
_CHUNK_FILES = 1024  # entries per piece of the manifest's JSON as it is written (~300 kB)


class FileEntry:
    """One cached file: its source version (`source_tag`) and the sha256 of the bytes we hold.

    Compact, since a manifest holds one per file: the numbers and the sha256 packed in one bytes object
    (about 170 bytes an entry instead of 300 as separate objects), the source tag kept only when it is
    not the one the size, ETag and mtime give (it almost always is).
    """

    __slots__ = ("_packed", "_tag", "etag")

    def __init__(
        self,
        size: int,
        sha256: str,
        source_tag: str,
        etag: str | None,
        mtime: float | None,
        fetched_at: float,
        local_mtime_ns: int = 0,  # of our copy when last verified: unchanged stat means unchanged bytes
    ) -> None:
        if not _is_count(size) or not _is_count(local_mtime_ns):
            raise TypeError("size and local_mtime_ns must be non-negative integers below 2**63")
        if not isinstance(sha256, str) or len(sha256) != _SHA256_HEX or not isinstance(source_tag, str):
            raise TypeError("sha256 and source_tag must be text, sha256 64 hex digits")
        if not isinstance(etag, str | None) or not _is_time(fetched_at) or not _is_time(mtime, True):
            raise TypeError("etag must be text, fetched_at and mtime times")
        self.etag = etag
        # bytes.fromhex: ValueError for a digit that is not hex.
        digest = bytes.fromhex(sha256)
        self._packed = _PACKED.pack(size, local_mtime_ns, math.nan if mtime is None else mtime, fetched_at, digest)
        self._tag: str | None = None
        if source_tag != self.source_tag:  # compared once packed: an integer mtime reads back as a float
            self._tag = source_tag

    @property
    def size(self) -> int:
        return int(_PACKED.unpack_from(self._packed)[0])

    @property
    def local_mtime_ns(self) -> int:
        return int(_PACKED.unpack_from(self._packed)[1])

    @local_mtime_ns.setter
    def local_mtime_ns(self, value: int) -> None:
        if not _is_count(value):
            raise TypeError("local_mtime_ns must be a non-negative integer below 2**63")
        fields = list(_PACKED.unpack_from(self._packed))
        fields[1] = value
        self._packed = _PACKED.pack(*fields)

    @property
    def mtime(self) -> float | None:
        mtime = float(_PACKED.unpack_from(self._packed)[2])
        return None if math.isnan(mtime) else mtime

    @property
    def fetched_at(self) -> float:
        return float(_PACKED.unpack_from(self._packed)[3])

    @property
    def sha256(self) -> str:
        return bytes(_PACKED.unpack_from(self._packed)[4]).hex()

    @property
    def source_tag(self) -> str:
        return self._tag if self._tag is not None else version_tag(self.size, self.etag, self.mtime)

    def fields(self) -> dict[str, object]:
        """The entry as the manifest's JSON holds it (unpacked once: the journal writes it for every file)."""
        size, local_mtime_ns, mtime, fetched_at, digest = _PACKED.unpack_from(self._packed)
        shown_mtime = None if math.isnan(mtime) else mtime
        return {
            "size": size,
            "sha256": digest.hex(),
            "source_tag": self._tag if self._tag is not None else version_tag(size, self.etag, shown_mtime),
            "etag": self.etag,
            "mtime": shown_mtime,
            "fetched_at": fetched_at,
            "local_mtime_ns": local_mtime_ns,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileEntry) and self.fields() == other.fields()

    __hash__ = None  # type: ignore[assignment]  # mutable (local_mtime_ns), like the dataclass it was

    def __repr__(self) -> str:
        return "FileEntry(" + ", ".join(f"{k}={v!r}" for k, v in self.fields().items()) + ")"


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63


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

    def to_dict(self) -> dict[str, object]:
        """The manifest as plain data, in the order of its fields (what `data describe -o json` shows)."""
        files = {name: entry.fields() for name, entry in self.files.items()}
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
        names = sorted(self.files)
        for i in range(0, len(names), _CHUNK_FILES):
            yield b",".join(
                b"\n    %s: %s" % (orjson.dumps(n), orjson.dumps(self.files[n].fields(), option=orjson.OPT_SORT_KEYS))
                for n in names[i : i + _CHUNK_FILES]
            ) + (b"," if i + _CHUNK_FILES < len(names) else b"")
        rest = {k: head[k] for k in ("name", "source", "stats")}
        yield b"\n  },\n  " + orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)[1:-1] + b"\n}\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
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
