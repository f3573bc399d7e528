"""A local folder as a dataset source: copied (never linked), every file hashed as it is written."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from trainflow.datasets import DatasetCache


def write_files(source: Path, count: int) -> dict[str, bytes]:
    files = {f"part-{i % 3}/{i:04d}.bin": os.urandom(50 + i) for i in range(count)}
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    return files


def test_many_small_files_are_each_cached_with_the_sha256_of_their_bytes(cache: DatasetCache, tmp_path: Path) -> None:
    files = write_files(tmp_path / "src", 700)  # many batches on several threads
    result = cache.ensure(str(tmp_path / "src"), "d")
    manifest = cache.manifest("d")
    assert manifest is not None and sorted(manifest.files) == sorted(files) == result.downloaded
    for name, data in files.items():
        assert (result.path / name).read_bytes() == data
        assert manifest.files[name].sha256 == hashlib.sha256(data).hexdigest()
    assert not list(result.path.rglob("*.part"))


def test_a_source_file_edited_in_place_leaves_the_cached_copy_as_synced(cache: DatasetCache, tmp_path: Path) -> None:
    files = write_files(tmp_path / "src", 10)
    name = "part-1/0004.bin"
    result = cache.ensure(str(tmp_path / "src"), "d")
    with open(tmp_path / "src" / name, "r+b") as source:  # in place: the same inode, as an editor saving over it
        source.write(b"edited")
    assert (result.path / name).read_bytes() == files[name]
    assert os.stat(result.path / name).st_ino != os.stat(tmp_path / "src" / name).st_ino

    again = cache.ensure(str(tmp_path / "src"), "d")
    edited = (tmp_path / "src" / name).read_bytes()
    assert again.downloaded == [name] and (again.path / name).read_bytes() == edited
    assert cache.manifest("d").files[name].sha256 == hashlib.sha256(edited).hexdigest()
