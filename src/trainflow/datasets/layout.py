"""Where a dataset's files live in its cache directory, and the checks that keep every path inside it.

A cached file's path is the dataset directory joined with the object's name, so a name is checked
before it becomes a path (no `..`, no absolute path, nothing odd: see `storage.names`), and no
directory on the way may be a symbolic link, which could lead anywhere. Names starting with '.' are
the cache's own (temp files, decompressed copies, prepared arrays); `manifest.json` at the top is its
index and `descriptor.json` describes the dataset.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from trainflow.datasets.errors import DatasetError
from trainflow.storage.names import is_hidden, name_problem

MANIFEST_NAME = "manifest.json"
DESCRIPTOR_NAME = "descriptor.json"
UNPACKED_DIR = ".unpacked"
PART_SUFFIX = ".part"


def object_problem(name: str) -> str | None:
    """Why `name` cannot be a file of a cached dataset, or None when it can."""
    problem = name_problem(name)
    if problem:
        return problem
    if is_hidden(name):
        return "starts with '.' (such names are the cache's own files)"
    if name == MANIFEST_NAME:
        return f"is the cache's own index ({MANIFEST_NAME})"
    if name == DESCRIPTOR_NAME:
        return f"is the cache's own dataset descriptor ({DESCRIPTOR_NAME})"
    return None


def checked_directory(directory: Path) -> Path:
    """`directory` once it is known not to be a symbolic link or a file."""
    try:
        mode = directory.lstat().st_mode
    except FileNotFoundError:
        return directory
    if stat.S_ISLNK(mode) or not stat.S_ISDIR(mode):
        what = f"a symbolic link to {os.readlink(directory)}" if stat.S_ISLNK(mode) else "not a directory"
        raise DatasetError(
            f"dataset directory {directory} is {what}, which the cache never makes: "
            f"remove it (trainflow data rm {directory.name}) and sync again"
        )
    return directory


def cached_path(directory: Path, name: str) -> Path:
    """The path of cached file `name`, once nothing on the way there is a symbolic link."""
    path = directory
    for segment in name.split("/"):
        path = path / segment
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            break
        except NotADirectoryError:
            break  # a file where a folder should be: the write fails with a clear error
        if stat.S_ISLNK(mode):
            raise DatasetError(
                f"dataset directory {directory} holds a symbolic link {path.relative_to(directory)} -> "
                f"{os.readlink(path)}, which the cache never makes (it could lead outside): "
                f"remove the dataset (trainflow data rm {directory.name}) and sync again"
            )
    return directory / name


def remove_cached_file(directory: Path, name: str) -> None:
    """Delete cached `name` and the folders it leaves empty (so a file may take a folder's place)."""
    path = cached_path(directory, name)
    path.unlink(missing_ok=True)
    parent = path.parent
    while parent != directory:
        try:
            parent.rmdir()
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                return
            raise
        parent = parent.parent


def remove_partial_files(directory: Path) -> list[Path]:
    """Delete what interrupted syncs left: their temp files (hidden, so never a dataset's own files)."""
    removed = []
    for dirpath, dirnames, filenames in os.walk(directory):  # does not follow symbolic links
        if Path(dirpath) == directory:
            dirnames[:] = [d for d in dirnames if d != UNPACKED_DIR]  # readers unpack there without the lock
        for filename in filenames:
            if filename.startswith(".") and filename.endswith((PART_SUFFIX, ".tmp")):
                path = Path(dirpath) / filename
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def write_failure(directory: Path, name: str, exc: OSError) -> DatasetError:
    """One line for a cached file that could not be written (full disk, permissions, a file in the way)."""
    reason = exc.strerror or type(exc).__name__
    return DatasetError(
        f"cannot write {name} into {directory} ({reason}): check free space and permissions, "
        f"or remove the dataset (trainflow data rm {directory.name}) and sync again"
    )
