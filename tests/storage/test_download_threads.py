"""How many downloads a store runs at once: few for files on this machine, many where each waits on a network."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from trainflow.storage import open_store
from trainflow.storage.base import NETWORK_DOWNLOAD_THREADS
from trainflow.storage.local import LocalStore


def mounted(*mounts: tuple[str, str]) -> list[SimpleNamespace]:
    """Mount table rows as psutil.disk_partitions gives them (the fields the store reads)."""
    return [SimpleNamespace(device="dev", mountpoint=point, fstype=fstype, opts="rw") for point, fstype in mounts]


def test_a_folder_on_a_local_disk_is_copied_by_half_the_cpus_this_process_may_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: mounted(("/", "ext4")))
    for cpus, threads in ((1, 1), (2, 1), (4, 2), (16, NETWORK_DOWNLOAD_THREADS), (64, NETWORK_DOWNLOAD_THREADS)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)), raising=False)
        assert LocalStore(tmp_path.as_uri(), tmp_path).download_threads == threads, cpus


def test_a_folder_on_a_network_file_system_keeps_a_network_stores_downloads_mount_table_mocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No NFS server can be mounted here: psutil's mount table is mocked, the innermost mount deciding.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    inner = str(tmp_path.resolve())
    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: mounted(("/", "ext4"), (inner, "nfs4")))
    assert LocalStore(tmp_path.as_uri(), tmp_path).download_threads == NETWORK_DOWNLOAD_THREADS
    monkeypatch.setattr(
        psutil, "disk_partitions", lambda all=False: mounted(("/", "nfs"), (inner + "x", "ext4"), (inner, "xfs"))
    )
    assert LocalStore(tmp_path.as_uri(), tmp_path).download_threads == 1  # its own mount, not a sibling's prefix
    monkeypatch.setattr(
        psutil, "disk_partitions", lambda all=False: mounted(("/", "ext4"), (inner + "/images", "fuse.s3fs"))
    )
    assert LocalStore(tmp_path.as_uri(), tmp_path).download_threads == NETWORK_DOWNLOAD_THREADS  # walked into
    monkeypatch.setattr(
        psutil, "disk_partitions", lambda all=False: mounted(("/", "ext4"), (inner, "nfs"), (inner, "xfs"))
    )
    assert LocalStore(tmp_path.as_uri(), tmp_path).download_threads == 1  # mounted over: the last one is seen


def test_a_mount_table_that_cannot_be_read_keeps_a_network_stores_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(all: bool = False) -> list[SimpleNamespace]:
        raise PermissionError("/proc/self/mounts")

    monkeypatch.setattr(psutil, "disk_partitions", unreadable)
    assert LocalStore(tmp_path.as_uri(), tmp_path).download_threads == NETWORK_DOWNLOAD_THREADS


def test_an_object_store_runs_a_network_stores_downloads() -> None:
    assert open_store("s3://bucket/prefix").download_threads == NETWORK_DOWNLOAD_THREADS
