"""A store's copy without hashing: only a file on this machine that the kernel copies; else `download` hashes it."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

import trainflow.storage.local as local_module
from trainflow.storage import ObjectNotFound, open_store

DATA = os.urandom(3 << 20) + b"tail"
kernel_copies = pytest.mark.skipif(not hasattr(os, "copy_file_range"), reason="no copy_file_range here (macOS)")


@pytest.fixture
def big(tmp_path: Path) -> Path:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "big.bin").write_bytes(DATA)
    return tmp_path / "store"


@kernel_copies
def test_only_a_store_of_files_on_this_machine_copies_without_hashing(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel: list[int] = []
    real = os.copy_file_range

    def counted(*args: int) -> int:
        kernel.append(args[2])
        return real(*args)

    monkeypatch.setattr(local_module.os, "copy_file_range", counted)
    store = open_store(store_url)
    store.ensure_container()
    store.write_bytes("d/big.bin", DATA)
    dest = tmp_path / "copy.bin"
    seen: list[int] = []
    copied = store.copy_unhashed("d/big.bin", dest, seen.append)
    if store.local_root is None:  # S3: its download hashes as it goes, behind the network's waits
        assert not copied and not dest.exists() and not seen
        return
    assert copied and dest.read_bytes() == DATA
    assert sum(seen) == len(DATA)
    assert kernel  # by the kernel, not through a buffer


@pytest.mark.parametrize("kernel", ["refuses", "copies nothing", "absent"])
def test_a_file_the_kernel_does_not_copy_is_left_to_download_which_reads_it_once(
    kernel: str, big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kernel == "refuses":  # across file systems on an older kernel, say

        def refused(*_: object) -> int:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

        monkeypatch.setattr(local_module.os, "copy_file_range", refused, raising=False)
    elif kernel == "copies nothing":  # a file some FUSE mounts give only to a read
        monkeypatch.setattr(local_module.os, "copy_file_range", lambda *_: 0, raising=False)
    else:  # macOS has no copy_file_range
        monkeypatch.delattr(local_module.os, "copy_file_range", raising=False)
    store = open_store(str(big))
    seen: list[int] = []
    assert not store.copy_unhashed("big.bin", tmp_path / "copy.bin", seen.append)
    assert not seen
    assert store.download("big.bin", tmp_path / "copy.bin") == hashlib.sha256(DATA).hexdigest()
    assert (tmp_path / "copy.bin").read_bytes() == DATA


@kernel_copies
def test_a_kernel_copy_that_fails_part_way_is_an_error_not_a_short_file(
    big: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.copy_file_range
    calls: list[int] = []

    def full_disk(src: int, dst: int, count: int, *args: object) -> int:
        calls.append(count)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst, 1 << 20)

    monkeypatch.setattr(local_module.os, "copy_file_range", full_disk)
    with pytest.raises(OSError, match="No space left"):
        open_store(str(big)).copy_unhashed("big.bin", tmp_path / "copy.bin")


def test_copying_a_missing_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    with pytest.raises(ObjectNotFound, match=r"no file at .*/store/gone.bin: check the path"):
        open_store(str(tmp_path / "store")).copy_unhashed("gone.bin", tmp_path / "copy.bin")
