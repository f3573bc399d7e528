"""The C allocator's setting for a sync: large blocks mapped while any sync in the process lists and copies."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap

import pytest

from trainflow.datasets import heap

# Run in a fresh interpreter, whose heap holds no free block of a MiB a test before it left: glibc maps a block at
# or over its threshold only where neither its free lists nor the heap's top can give it.
_MAPPED = textwrap.dedent(
    """
    import ctypes, sys, threading
    from trainflow.datasets import heap

    class MallInfo2(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks "
                    "fordblks keepcost".split()]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2

    def mapped():  # whether a block of a MiB is served from its own mapping now
        libc.malloc_trim(0)
        before = libc.mallinfo2().hblks
        block = bytearray(1 << 20)
        return int(libc.mallinfo2().hblks > before)

    entered, release, seen = threading.Event(), threading.Event(), []

    def other_sync():  # DatasetCache.ensure of another dataset, on another thread
        with heap.large_blocks_mapped():
            entered.set()
            release.wait()

    other = threading.Thread(target=other_sync)
    other.start()
    entered.wait()
    with heap.large_blocks_mapped():
        seen.append(mapped())
    seen.append(mapped())  # the other sync still lists and copies
    release.set()
    other.join()
    seen.append(mapped())  # no sync left: numpy's temporaries stay in the heap
    try:
        with heap.large_blocks_mapped():
            raise RuntimeError("the source went away")
    except RuntimeError:
        seen.append(mapped())
    print(*seen)
    """
)


@pytest.mark.skipif(
    heap._glibc() is None or not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="glibc's allocator (2.33 and up)"
)
def test_a_sync_that_ends_beside_another_leaves_large_blocks_mapped_until_the_other_ends() -> None:
    out = subprocess.run([sys.executable, "-c", _MAPPED], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["1", "1", "0", "0"]  # in the two syncs, with one still on, after, after a failure


@pytest.mark.skipif(
    heap._glibc() is None or not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="glibc's allocator (2.33 and up)"
)
@pytest.mark.parametrize(
    "setting", [{"MALLOC_MMAP_THRESHOLD_": "4194304"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4194304"}]
)
def test_a_threshold_the_user_gave_glibc_is_kept_through_a_sync(setting: dict[str, str]) -> None:
    env = dict(os.environ, **setting)
    out = subprocess.run(
        [sys.executable, "-c", _MAPPED], capture_output=True, text=True, check=True, timeout=60, env=env
    )
    assert out.stdout.split() == ["0", "0", "0", "0"]  # a MiB is under the user's 4 MiB: never mapped


def test_a_sync_where_the_c_library_cannot_be_opened_by_none_sets_nothing_windows_simulated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Windows cannot run here: there ctypes.CDLL(None) raises TypeError ('/' in None), simulated by that error."""

    def windows_cdll(name: str | None, *args: object, **kwargs: object) -> ctypes.CDLL:
        raise TypeError("argument of type 'NoneType' is not iterable")

    heap._glibc.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", windows_cdll)
    try:
        with heap.large_blocks_mapped():
            heap.return_free_memory()
    finally:
        heap._glibc.cache_clear()
