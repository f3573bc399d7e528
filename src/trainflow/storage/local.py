"""Local directories (plain paths and file:// URLs) as a store."""

from __future__ import annotations

import builtins
import errno
import itertools
import mmap
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from io import FileIO
from pathlib import Path

from trainflow.cores import usable_cores
from trainflow.storage.atomic import atomic_write_bytes
from trainflow.storage.base import (
    NETWORK_DOWNLOAD_THREADS,
    HashingWriter,
    ObjectInfo,
    ProgressCallback,
    Store,
    _no_progress,
)
from trainflow.storage.errors import ObjectExists, ObjectNotFound, StorageError
from trainflow.storage.names import name_problem, shown

_CHUNK = 1 << 20
_KERNEL_CHUNK = 64 << 20  # bytes a copy_file_range call: progress reported this often
# What copy_file_range says where it cannot copy between these two files: then `download` reads them instead.
_NO_KERNEL_COPY = frozenset((errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.EBADF))
# File systems whose reads wait on a local device or on memory, not on a network (psutil's fstype names).
_LOCAL_FILE_SYSTEMS = frozenset(
    ("apfs", "btrfs", "exfat", "ext2", "ext3", "ext4", "f2fs", "hfs", "jfs", "msdos", "ntfs", "ntfs3", "overlay",
     "ramfs", "reiserfs", "squashfs", "tmpfs", "vfat", "xfs", "zfs")
)  # fmt: skip
_PAGE = 1000  # objects a page of a listing, as S3 gives them
_buffers = threading.local()


def _read_buffer() -> memoryview:
    """This thread's copy buffer, made once: a `read` per chunk allocated _CHUNK bytes for every file (then shrank
    them to the file's size), a block the allocator maps and unmaps once large blocks are mapped (`datasets.heap`).

    Anonymous memory, so only the pages a copy writes into are ever resident; it goes with its thread. Private: a
    shared mapping (mmap's default) is the same memory in a child forked after it was made, whose copies would
    write into the parent's under way.
    """
    view: memoryview | None = getattr(_buffers, "view", None)
    if view is None:
        private = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}  # fd -1 adds MAP_ANONYMOUS
        view = _buffers.view = memoryview(mmap.mmap(-1, _CHUNK, **private))
    return view


def _kernel_copy(inp: FileIO, out: FileIO, progress: ProgressCallback) -> bool:
    """The file `inp` into `out` by the kernel (copy_file_range: ~4x a read and write through a buffer); False, with
    nothing copied, where it copies nothing (another system, a pair of file systems that refuses, an empty file, or
    one some file systems (FUSE, procfs) give only to a read)."""
    if not hasattr(os, "copy_file_range"):
        return False
    copied = 0
    try:
        while count := os.copy_file_range(inp.fileno(), out.fileno(), _KERNEL_CHUNK):
            copied += count
            progress(count)
    except OSError as exc:
        if copied or exc.errno not in _NO_KERNEL_COPY:
            raise
    return copied > 0


def _local_file_systems_only(root: Path) -> bool:
    """Whether the file system holding `root` and every one mounted below it are local ones (False if unknown)."""
    import psutil  # ~10 ms: a sync asks once

    try:
        mounts = psutil.disk_partitions(all=True)
    except Exception:  # noqa: BLE001 - any failure to read the mount table means "unknown"
        return False
    resolved = str(root.resolve())
    holding, fstype = "", ""
    for mount in mounts:
        point = mount.mountpoint.rstrip("/") or "/"
        if _inside(point, resolved) and len(point) >= len(holding):  # the innermost; the last mounted on one point
            holding, fstype = point, mount.fstype
        elif _inside(resolved, point) and mount.fstype not in _LOCAL_FILE_SYSTEMS:
            return False  # a network file system below the root: the listing walks into it
    return fstype in _LOCAL_FILE_SYSTEMS


def _inside(folder: str, path: str) -> bool:
    return path == folder or path.startswith(folder if folder == "/" else folder + "/")


class LocalStore(Store):
    """Objects are files under a base directory."""

    def __init__(self, url: str, root: Path) -> None:
        super().__init__(url)
        self.root = root

    @property
    def download_threads(self) -> int:
        """As many copies as half the cores this process may use (1 on 2 cores), up to a network store's count;
        that count where a file system under the root is not a local one (NFS, SMB, FUSE, unknown: their reads wait
        as a network store's do).

        A copy from a local disk or the page cache waits little, and each of its system calls hands the interpreter
        lock to another copy: on 2 cores 8 copy threads took 1.7x the CPU of one at 10,000 PNGs, and 1.6x the time.
        A local file system on a network block device (a cloud volume) counts as local.
        """
        if not _local_file_systems_only(self.root):
            return NETWORK_DOWNLOAD_THREADS
        return max(1, min(NETWORK_DOWNLOAD_THREADS, usable_cores() // 2))

    def _path(self, name: str) -> Path:
        if not name:
            return self.root
        problem = name_problem(name)
        if problem:
            raise StorageError(
                f"refusing object name {shown(name)} under {self.url}: it {problem}; name a file inside the directory"
            )
        return self.root / name

    def _info(self, name: str, path: Path) -> ObjectInfo:
        st = path.stat()
        return ObjectInfo(name=name, size=st.st_size, mtime=st.st_mtime)

    def list(self, names: Sequence[str] | None = None) -> list[ObjectInfo]:
        return [obj for page in self.pages(names) for obj in page]

    def pages(self, names: Sequence[str] | None = None) -> Iterator[builtins.list[ObjectInfo]]:
        if names is not None:
            yield [self.stat(n) for n in names]
            return
        if not self.root.is_dir():
            raise ObjectNotFound(f"no directory at {self.url}: check the path")
        files = self._walk(str(self.root), "")
        while page := builtins.list(itertools.islice(files, _PAGE)):
            yield page

    def _walk(self, folder: str, prefix: str) -> Iterator[ObjectInfo]:
        """The files of `folder` (sorted), then its folders' (sorted, depth first), as os.walk orders them.

        Hidden entries are temp files of writers in progress; pipes and devices are no objects; a link
        to a folder is not followed (a link to a file is read as that file). Names are built as text,
        not paths: a listing of 100,000 files spent most of its time making Path objects.
        """
        try:
            with os.scandir(folder) as listing:
                entries = sorted((e for e in listing if not e.name.startswith(".")), key=lambda e: e.name)
        except FileNotFoundError:  # removed since its parent was read: a sync plans each page before reading on
            return
        folders = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry)
            elif entry.is_file():
                try:
                    st = entry.stat()
                except FileNotFoundError:  # removed since its folder was read: no longer an object
                    continue
                yield ObjectInfo(prefix + entry.name, st.st_size, mtime=st.st_mtime)
        for entry in folders:
            yield from self._walk(entry.path, f"{prefix}{entry.name}/")

    def stat(self, name: str) -> ObjectInfo:
        path = self._path(name)
        if not path.is_file():
            raise ObjectNotFound(f"no file at {self.object_url(name)}: check the path")
        return self._info(name, path)

    def download(self, name: str, dest: Path, progress: ProgressCallback = _no_progress) -> str:
        src = self._path(name)
        buffer = _read_buffer()
        try:
            with open(src, "rb", buffering=0) as inp, open(dest, "wb") as out:
                writer = HashingWriter(out)
                while read := inp.readinto(buffer):
                    writer.write(buffer[:read])
                    progress(read)
        except FileNotFoundError:
            raise ObjectNotFound(f"no file at {self.object_url(name)}: check the path") from None
        return writer.hexdigest()

    def copy_unhashed(self, name: str, dest: Path, progress: ProgressCallback = _no_progress) -> bool:
        try:
            with open(self._path(name), "rb", buffering=0) as inp, open(dest, "wb", buffering=0) as out:
                return _kernel_copy(inp, out, progress)  # else `download` reads it once, hashing it on the way
        except FileNotFoundError:
            raise ObjectNotFound(f"no file at {self.object_url(name)}: check the path") from None

    def read_bytes(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(f"no file at {self.object_url(name)}: check the path") from None

    def write_bytes(self, name: str, data: bytes) -> None:
        try:
            atomic_write_bytes(self._path(name), data)
        except PermissionError:
            raise StorageError(f"cannot write {self.object_url(name)}: permission denied") from None

    def upload(self, src: Path, name: str, progress: ProgressCallback = _no_progress) -> None:
        dest = self._path(name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            progress(os.path.getsize(tmp))
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, name: str) -> None:
        path = self._path(name)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def ensure_container(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = "it is a file" if self.root.is_file() else exc.strerror or str(exc)
            raise StorageError(
                f"cannot use {self.url} as a directory ({why}): give a directory you can write"
            ) from None

    @property
    def local_root(self) -> Path:
        return self.root

    def children(self, holding: str | None = None) -> builtins.list[str]:
        """Entries of the base directory, empty directories included (a version that died half-written)."""
        if holding is not None:
            self.checked_name(holding)
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if not p.name.startswith(".")
            and name_problem(p.name) is None
            and (holding is None or (p / holding).is_file())
        )

    def publish(self, name: str, files: Mapping[str, bytes], marker: str) -> None:
        """Written to a hidden staging directory beside `name`, then renamed into place in one step."""
        target = self._path(name)
        for file in files:
            self.checked_name(f"{name}/{file}")
        if target.exists() or target.is_symlink():  # rename() would replace an empty directory
            raise ObjectExists(f"{self.object_url(name)} already exists: publish under another name")
        self.ensure_container()
        try:
            staged = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        except OSError as exc:
            raise StorageError(f"cannot write under {self.url}: {exc.strerror or exc}") from None
        try:
            staged.chmod(0o755)  # mkdtemp makes it private; readers may run as another user
            for file, data in files.items():
                (staged / file).parent.mkdir(parents=True, exist_ok=True)
                (staged / file).write_bytes(data)
            self._rename_into_place(staged, target, name)
        except OSError as exc:
            shutil.rmtree(staged, ignore_errors=True)
            raise StorageError(
                f"cannot write {self.object_url(name)}: {exc.strerror or exc} (nothing was published)"
            ) from None
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise

    def _rename_into_place(self, staged: Path, target: Path, name: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staged, target)  # fails when another writer's directory got there first
        except OSError:
            if target.exists():
                raise ObjectExists(f"{self.object_url(name)} already exists: publish under another name") from None
            raise

    @contextmanager
    def local_copy(self, names: Sequence[str]) -> Iterator[Path]:
        """The base directory itself: its files are read in place."""
        for name in names:
            self._path(name)
        yield self.root
