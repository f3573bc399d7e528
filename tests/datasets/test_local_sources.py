"""A local folder as a dataset source: copied (never linked), every file hashed as it is written."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from trainflow.datasets import DatasetCache, SyncObserver
from trainflow.storage import SourceUnreachable


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


class Recorder(SyncObserver):
    """What a progress display is told: the plan, then bytes and files as they arrive."""

    def __init__(self) -> None:
        self.plans: list[tuple[int, int]] = []
        self.bytes = 0
        self.files: list[str] = []
        self.lock = threading.Lock()

    def planned(self, files: int, total_bytes: int) -> None:
        self.plans.append((files, total_bytes))

    def bytes_done(self, n: int) -> None:
        with self.lock:
            self.bytes += n

    def file_done(self, name: str) -> None:
        self.files.append(name)


def test_a_sync_tells_its_progress_display_what_it_will_fetch_before_it_fetches(
    cache: DatasetCache, tmp_path: Path
) -> None:
    files = write_files(tmp_path / "src", 40)
    seen = Recorder()
    cache.ensure(str(tmp_path / "src"), "d", observer=seen)

    total = sum(len(data) for data in files.values())
    assert seen.plans == [(40, total)] and seen.bytes == total and sorted(seen.files) == sorted(files)
    again = Recorder()
    cache.ensure(str(tmp_path / "src"), "d", observer=again)  # nothing to fetch: an empty plan, no bytes
    assert again.plans == [(0, 0)] and again.bytes == 0


def test_a_source_file_that_grows_while_it_is_synced_is_said_to_have_changed(
    cache: DatasetCache, tmp_path: Path
) -> None:
    write_files(tmp_path / "src", 3)
    grown = tmp_path / "src" / "part-0/0000.bin"

    class Grower(SyncObserver):
        def planned(self, files: int, total_bytes: int) -> None:  # listed: the file grows before it is copied
            with open(grown, "ab") as f:
                f.write(b"more")

    with pytest.raises(SourceUnreachable, match=r"0000\.bin changed while it was synced \(54 bytes copied, 50 bytes "):
        cache.ensure(str(tmp_path / "src"), "d", observer=Grower())
    result = cache.ensure(str(tmp_path / "src"), "d")  # the next sync takes it as it is now
    assert (result.path / "part-0/0000.bin").read_bytes() == grown.read_bytes()
