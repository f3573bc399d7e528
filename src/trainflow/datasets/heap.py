"""The C allocator's settings for a sync of many files: glibc's through ctypes; with another C library nothing is done."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
from collections.abc import Iterator

_M_MMAP_THRESHOLD = -3  # mallopt's parameter, from glibc's malloc.h
_MAPPED_FROM = 128 * 1024  # glibc's default threshold, kept fixed
_MAPPED_FROM_AFTER = 32 * 1024 * 1024  # the highest glibc's own adjustment raises it to on 64-bit systems


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError, TypeError):  # not glibc (Windows: CDLL(None) is a TypeError)
        return None
    return libc


def _tuned_by_user() -> bool:
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return "MALLOC_MMAP_THRESHOLD_" in os.environ or "glibc.malloc.mmap_threshold" in tunables


class _Syncs:
    """How many threads of this process are inside `large_blocks_mapped` (glibc's threshold is the process's)."""

    lock = threading.Lock()
    count = 0


@contextlib.contextmanager
def large_blocks_mapped() -> Iterator[None]:
    """Serve blocks of 128 KiB and more from their own mappings while in the block, in this process.

    glibc raises that threshold to the size of each mapped block freed (up to 32 MiB): after a few numpy temporaries
    the buffers a sync grows (the manifest's table, the fetch queue) live in the heap, move as they grow and leave
    holes there (~10 MB at 100,000 files) that forked decode workers share. Mapped, they grow in place (mremap) and
    go back to the system when freed. After the block the threshold is glibc's highest (fixed: its own adjustment
    does not come back), so the numpy temporaries of what follows (a table's conversion, a prediction, a training in
    the same process) are not each mapped and unmapped. The setting is the process's: syncs on other threads share
    it, and the last of them to end sets it back. A threshold the user gave glibc (MALLOC_MMAP_THRESHOLD_,
    GLIBC_TUNABLES) is left as it is.
    """
    libc = None if _tuned_by_user() else _glibc()
    with _Syncs.lock:
        if libc is not None and not _Syncs.count:
            libc.mallopt(_M_MMAP_THRESHOLD, _MAPPED_FROM)
        _Syncs.count += 1
    try:
        yield
    finally:
        with _Syncs.lock:
            _Syncs.count -= 1
            if libc is not None and not _Syncs.count:
                libc.mallopt(_M_MMAP_THRESHOLD, _MAPPED_FROM_AFTER)


def return_free_memory() -> None:
    """Give the C allocator's free pages back to the system (`malloc_trim`).

    A sync's listing and the growth of the manifest's buffers leave megabytes free but mapped inside the heap
    (~10 MB at 100,000 files), which forked workers would share and keep resident.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
