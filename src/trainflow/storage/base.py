"""The one interface every object store implements, and the records it returns."""

from __future__ import annotations

import builtins
import hashlib
import logging
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from trainflow.storage.errors import ObjectExists, ObjectNotFound, StorageError
from trainflow.storage.names import clash_problem, name_problem, shown

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int], None]


def _no_progress(_: int) -> None:
    return None


class HashingWriter:
    """A write-only file that hashes every byte on its way to `out`, in the order written.

    It says it cannot seek, so boto3 writes a ranged download's parts to it in order.
    """

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes | memoryview) -> int:
        self.sha256.update(data)
        return self.out.write(data)

    def seekable(self) -> bool:
        return False

    def hexdigest(self) -> str:
        return self.sha256.hexdigest()


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object under a store's base URL; `name` is relative to it, with '/' separators."""

    name: str
    size: int
    etag: str | None = None
    mtime: float | None = None

    @property
    def version_tag(self) -> str:
        """What identifies this object's content at the source: the ETag, else size and mtime."""
        return version_tag(self.size, self.etag, self.mtime)


def version_tag(size: int, etag: str | None, mtime: float | None) -> str:
    """The version tag of an object with this size, ETag and mtime (see `ObjectInfo.version_tag`)."""
    if etag:
        return f"etag:{etag}"
    return f"size:{size}:mtime:{mtime}"


@dataclass(frozen=True)
class StorageOptions:
    """How to reach object stores; credentials are never here: they come from the environment."""

    endpoint_url: str | None = None
    region: str | None = None
    max_attempts: int = 4
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    @classmethod
    def from_env(cls, endpoint_url: str | None = None, region: str | None = None) -> StorageOptions:
        """Explicit values first, then AWS_ENDPOINT_URL / S3_ENDPOINT and AWS_REGION."""
        return cls(endpoint_url=endpoint_url or endpoint_from_env(), region=region or region_from_env())


def endpoint_from_env() -> str | None:
    """`AWS_ENDPOINT_URL`, else the example's `S3_ENDPOINT` (host:port, https unless S3_USE_HTTPS=0)."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if url:
        return url
    host = os.environ.get("S3_ENDPOINT")
    if not host:
        return None
    if "://" in host:
        return host
    scheme = "http" if os.environ.get("S3_USE_HTTPS", "1") in ("0", "false", "False") else "https"
    return f"{scheme}://{host}"


def region_from_env() -> str | None:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


NETWORK_DOWNLOAD_THREADS = 8


class Store(ABC):
    """Objects under one base URL. Names are relative to it and use '/' separators."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def object_url(self, name: str) -> str:
        return f"{self.url.rstrip('/')}/{name}" if name else self.url

    @abstractmethod
    def list(self, names: Sequence[str] | None = None) -> list[ObjectInfo]:
        """All objects under the base URL (recursively), or just `names`, which must all exist."""

    def pages(self, names: Sequence[str] | None = None) -> Iterator[builtins.list[ObjectInfo]]:
        """The objects of `list`, a page at a time as the store gives them: a caller that checks each page as it
        comes never holds the whole listing (~190 bytes an object). Errors are those of `list`, raised as the
        pages are read."""
        yield self.list(names)

    @abstractmethod
    def stat(self, name: str) -> ObjectInfo:
        """One object's size and version tag; ObjectNotFound if absent."""

    @abstractmethod
    def download(self, name: str, dest: Path, progress: ProgressCallback = _no_progress) -> str:
        """Write the object's bytes to `dest` (the caller renames it into place); return their sha256.

        The bytes are hashed as they arrive, so checking a download costs no second pass over it.
        """

    def copy_unhashed(self, name: str, dest: Path, progress: ProgressCallback = _no_progress) -> bool:
        """Write the object's bytes to `dest` without hashing them, where that is cheaper than `download`: a file on
        this machine, copied by the kernel, whose caller hashes the copy later beside other work. False, with nothing
        copied, where it is not (a network download's hash hides behind its waits; a file the kernel cannot copy is
        better read once, by `download`)."""
        return False

    @abstractmethod
    def read_bytes(self, name: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, name: str, data: bytes) -> None:
        """Write an object whole: readers see the old content or the new, never a part."""

    @abstractmethod
    def upload(self, src: Path, name: str, progress: ProgressCallback = _no_progress) -> None: ...

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove one object; no error if it is already gone."""

    def exists(self, name: str) -> bool:
        try:
            self.stat(name)
        except ObjectNotFound:
            return False
        return True

    def ensure_container(self) -> None:  # noqa: B027 - optional: only stores with containers override it
        """Create what must exist before writing (a bucket, a directory)."""

    @property
    def listable(self) -> bool:
        """False for a store that cannot list its objects (http(s)): callers must name the files they want."""
        return True

    @property
    def download_threads(self) -> int:
        """How many downloads suit this store at once: each waits on the network most of its time."""
        return NETWORK_DOWNLOAD_THREADS

    @property
    def local_root(self) -> Path | None:
        """The directory holding the objects when they are plain files on this machine, else None.

        For what must use a directory in place (TensorBoard reading or writing event files); others copy.
        """
        return None

    def checked_name(self, name: str) -> str:
        """`name` when it is a plain relative path; StorageError naming the problem otherwise."""
        problem = name_problem(name)
        if problem:
            raise StorageError(f"refusing object name {shown(name)} under {self.url}: it {problem}")
        return name

    def checked_names(self, names: Sequence[str]) -> builtins.list[str]:
        """`names` when each is a plain relative path and together they fit in one directory; else StorageError.

        An object store can hold `x` beside `x/y`; a directory cannot hold both as files.
        """
        for name in names:
            self.checked_name(name)
        clash = clash_problem(names)
        if clash:
            raise StorageError(
                f"refusing to copy {self.url} into a directory: the object {shown(clash[0])} {clash[1]}, and a "
                "directory cannot hold both; rename or delete one of them at the source"
            )
        return builtins.list(names)

    def download_into(self, directory: Path, names: Sequence[str] | None = None) -> builtins.list[str]:
        """The objects `names` (every listed one when None) into the existing `directory`; the names written.

        StorageError, before anything is written, when the names cannot all be files there (see
        `checked_names`). On a failure part-way the caller removes `directory`, as it made it.
        """
        wanted = self.checked_names([info.name for info in self.list()] if names is None else names)
        for name in wanted:
            dest = directory / name
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot write {dest} ({exc.strerror or exc}): free some space or fix its permissions"
                ) from None
            self.download(name, dest)
        return wanted

    def children(self, holding: str | None = None) -> builtins.list[str]:
        """Names directly under the base (objects and "directories"), sorted; [] when nothing is there.

        With `holding`, only the directories that hold an object of that name (a marker of completeness).
        Hidden names, and names that are no plain relative path (hostile keys like '..'), are left out.
        """
        try:
            names = [info.name for info in self.list()]
        except ObjectNotFound:
            return []
        found = set()
        for name in names:
            head, sep, rest = name.partition("/")
            if holding is None or (sep and rest == holding):
                found.add(head)
        return sorted(n for n in found if not n.startswith(".") and name_problem(n) is None)

    def publish(self, name: str, files: Mapping[str, bytes], marker: str) -> None:
        """Make `files` appear under `name/` at once; ObjectExists when `name` is taken, and nothing written.

        An object store writes `marker` last, so readers treat a `name/` without it as incomplete, and removes
        what it wrote when a write fails.
        """
        keys = {self.checked_name(f"{name}/{file}"): data for file, data in files.items()}
        if name in self.children():
            raise ObjectExists(f"{self.object_url(name)} already exists: publish under another name")
        self.ensure_container()
        written: builtins.list[str] = []
        try:
            for key in sorted(keys, key=lambda k: k == f"{name}/{marker}"):
                written.append(key)
                self.write_bytes(key, keys[key])
        except BaseException:
            for key in written:
                try:
                    self.delete(key)
                except StorageError as exc:  # readers skip a directory without its marker anyway
                    log.warning("could not remove the partial %s: %s", self.object_url(key), exc)
            raise

    @contextmanager
    def local_copy(self, names: Sequence[str]) -> Iterator[Path]:
        """A local directory holding the objects `names`: a temporary download, removed on exit."""
        with tempfile.TemporaryDirectory(prefix="trainflow-copy-") as tmp:
            self.download_into(Path(tmp), names)
            yield Path(tmp)
