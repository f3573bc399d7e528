"""A sync's copies run on as many threads as its store says suit it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from trainflow.datasets.fetch import Fetcher, ObjectQueue
from trainflow.datasets.observer import SyncObserver
from trainflow.storage import ObjectInfo
from trainflow.storage.base import ProgressCallback, _no_progress
from trainflow.storage.local import LocalStore


class CountingStore(LocalStore):
    """A local folder that says how many downloads suit it and records the threads that ran them."""

    def __init__(self, root: Path, threads: int) -> None:
        super().__init__(root.as_uri(), root)
        self.threads = threads
        self.seen: set[int] = set()

    @property
    def download_threads(self) -> int:
        return self.threads

    def download(self, name: str, dest: Path, progress: ProgressCallback = _no_progress) -> str:
        self.seen.add(threading.get_ident())
        return super().download(name, dest, progress)


@pytest.mark.parametrize("threads", [1, 3])
def test_a_syncs_copies_run_on_the_threads_its_store_asks_for(tmp_path: Path, threads: int) -> None:
    source = tmp_path / "source"
    source.mkdir()
    todo = ObjectQueue()
    for i in range(200):
        (source / f"f{i:03d}.bin").write_bytes(bytes([i % 256]) * 100)
        todo.append(ObjectInfo(f"f{i:03d}.bin", 100))
    store = CountingStore(source, threads)
    (tmp_path / "cache").mkdir()
    fetched = [item for batch in Fetcher(store, tmp_path / "cache", SyncObserver()).fetched(todo) for item in batch]
    assert len(fetched) == 200 and not [e for _, e in fetched if isinstance(e, BaseException)]
    assert 1 <= len(store.seen) <= threads
    assert (tmp_path / "cache" / "f007.bin").read_bytes() == bytes([7]) * 100
