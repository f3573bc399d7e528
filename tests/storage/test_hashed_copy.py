"""A large local file is copied by the kernel and hashed beside the copy: the cached bytes and the manifest's sha256
are the source's, where the kernel copies and where it refuses to."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from trainflow.datasets import DatasetCache
from trainflow.storage import hashed_copy, open_store


def large_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("size", [hashed_copy.PIPELINED_BYTES, 3 * hashed_copy.PIPELINED_BYTES + 12345])
def test_a_file_copied_by_the_kernel_is_the_source_and_hashes_as_it(tmp_path: Path, size: int) -> None:
    data = large_file(tmp_path / "src" / "t.bin", size)
    seen: list[int] = []
    with open(tmp_path / "src" / "t.bin", "rb") as src:
        digest = hashed_copy.copy_hashed(src.fileno(), tmp_path / "copy", seen.append)

    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "copy").read_bytes() == data
    assert sum(seen) == size


def test_a_large_file_synced_from_a_folder_has_its_bytes_and_checksum_in_the_cache(
    cache: DatasetCache, tmp_path: Path
) -> None:
    data = large_file(tmp_path / "src" / "blob.bin", 2 * hashed_copy.PIPELINED_BYTES + 7)
    result = cache.ensure(str(tmp_path / "src"), "d")

    manifest = cache.manifest("d")
    assert manifest is not None and manifest.files["blob.bin"].sha256 == hashlib.sha256(data).hexdigest()
    assert (result.path / "blob.bin").read_bytes() == data


def test_where_the_kernel_will_not_copy_across_file_systems_the_store_copies_through_a_buffer_simulated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated: this machine's /tmp is one file system, so EXDEV is raised by a stand-in for the system call."""

    def refuse(*_: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(hashed_copy, "_copy_file_range", refuse)
    data = large_file(tmp_path / "src" / "blob.bin", hashed_copy.PIPELINED_BYTES + 1)
    (tmp_path / "dest").touch()
    digest = open_store(str(tmp_path / "src")).download("blob.bin", tmp_path / "dest")

    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "dest").read_bytes() == data


def test_where_the_kernel_copies_nothing_of_a_file_it_holds_the_store_copies_through_a_buffer_simulated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated: copy_file_range returns 0 at once where a file system cannot copy a file it reports bytes for
    (Go's and CPython 3.14's copies fall back there); this machine's /tmp copies, so a stand-in returns 0."""
    monkeypatch.setattr(hashed_copy, "_copy_file_range", lambda *_: 0)
    data = large_file(tmp_path / "src" / "blob.bin", hashed_copy.PIPELINED_BYTES + 1)
    digest = open_store(str(tmp_path / "src")).download("blob.bin", tmp_path / "dest")

    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "dest").read_bytes() == data


def test_a_file_the_kernel_copies_gets_the_mode_of_one_copied_through_a_buffer(tmp_path: Path) -> None:
    large_file(tmp_path / "src" / "large.bin", hashed_copy.PIPELINED_BYTES)
    large_file(tmp_path / "src" / "small.bin", 10)
    store = open_store(str(tmp_path / "src"))
    store.download("large.bin", tmp_path / "large.bin")
    store.download("small.bin", tmp_path / "small.bin")

    assert (tmp_path / "large.bin").stat().st_mode == (tmp_path / "small.bin").stat().st_mode
