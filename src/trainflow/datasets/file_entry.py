"""One cached file's record in the manifest: its size, source version, times and sha256, packed in 64 bytes."""

from __future__ import annotations

import math
import struct

from trainflow.storage.base import version_tag

_SHA256_HEX = 64
_PACKED = struct.Struct("<qqdd32s")  # size, local_mtime_ns, mtime (NaN: none), fetched_at, sha256
RECORD_SIZE = _PACKED.size


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
        if not is_count(size) or not is_count(local_mtime_ns):
            raise TypeError("size and local_mtime_ns must be non-negative integers below 2**63")
        if not isinstance(sha256, str) or len(sha256) != _SHA256_HEX or not isinstance(source_tag, str):
            raise TypeError("sha256 and source_tag must be text, sha256 64 hex digits")
        if not isinstance(etag, str | None) or not is_time(fetched_at) or not is_time(mtime, True):
            raise TypeError("etag must be text, fetched_at and mtime times")
        self.etag = etag
        # bytes.fromhex: ValueError for a digit that is not hex.
        digest = bytes.fromhex(sha256)
        self._packed = _PACKED.pack(size, local_mtime_ns, math.nan if mtime is None else mtime, fetched_at, digest)
        self._tag: str | None = None
        if source_tag != self.source_tag:  # compared once packed: an integer mtime reads back as a float
            self._tag = source_tag

    @classmethod
    def from_parts(cls, packed: bytes, etag: str | None, tag: str | None) -> FileEntry:
        """The entry whose `parts()` these are (read back from a `FileTable`, already checked when stored)."""
        entry = cls.__new__(cls)
        entry._packed, entry.etag, entry._tag = packed, etag, tag
        return entry

    def parts(self) -> tuple[bytes, str | None, str | None]:
        """The packed record (`RECORD_SIZE` bytes), the ETag and the source tag when it is not the usual one."""
        return self._packed, self.etag, self._tag

    @property
    def size(self) -> int:
        return int(_PACKED.unpack_from(self._packed)[0])

    @property
    def local_mtime_ns(self) -> int:
        return int(_PACKED.unpack_from(self._packed)[1])

    @local_mtime_ns.setter
    def local_mtime_ns(self, value: int) -> None:
        if not is_count(value):
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


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63


def is_time(value: object, optional: bool = False) -> bool:
    """A Unix time that the standard library can format (finite, from 1970 to year 5000)."""
    if value is None:
        return optional
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 95_617_584_000
