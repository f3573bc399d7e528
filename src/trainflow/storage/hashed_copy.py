"""A large local file copied by the kernel while a second thread hashes the copy as it grows.

Reading a chunk, hashing it and writing it on one thread takes the three one after another (~0.28 s for 220 MB
here); `copy_file_range` moves the bytes without them passing through Python (~0.08 s), and the sha256 of what
landed in the copy is taken beside it, so the copy takes about as long as its hash alone.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from trainflow.cores import usable_cores

PIPELINED_BYTES = 8 << 20  # files at least this large; a smaller one is copied through a buffer, hashed on the way
_STEP = 8 << 20  # bytes the kernel copies at a time (the hash follows a step behind)
_READ = 1 << 20  # bytes of the copy read back at a time to hash
_copy_file_range = getattr(os, "copy_file_range", None)  # Linux only


def copy_hashed(src: int, dest: Path, progress: Callable[[int], None]) -> str | None:
    """Copy the open file `src` from its start to its end into the file `dest` (made empty); the sha256 of the copy.

    None, with nothing copied, for a file under PIPELINED_BYTES, on one core (the hash would wait for the copy),
    or where the kernel cannot copy between the two (another system, file systems it will not copy across, or one
    that copies nothing of the file): the caller copies through a buffer instead.
    """
    if _copy_file_range is None or os.fstat(src).st_size < PIPELINED_BYTES or usable_cores() < 2:
        return None
    fd = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)  # the umask applies, as to open(dest, "wb")
    try:
        return _copy(src, fd, progress)
    finally:
        os.close(fd)


def _copy(src: int, dest: int, progress: Callable[[int], None]) -> str | None:
    try:
        first = _copy_file_range(src, dest, _STEP, 0, 0)  # type: ignore[misc]  # present: checked by the caller
    except OSError:
        return None
    if not first:  # nothing copied of a file that holds bytes: a file system that cannot copy it says so with 0
        return None
    sha256 = hashlib.sha256()
    copied: queue.SimpleQueue[int | None] = queue.SimpleQueue()  # where the copy ends so far; None: it is done
    failed: list[BaseException] = []
    stop = threading.Event()  # the copy failed or was interrupted: the hash is not wanted, and no one waits for it

    def hash_copy() -> None:
        at = 0
        try:
            while (end := copied.get()) is not None and not stop.is_set():
                while at < end and not stop.is_set():
                    data = os.pread(dest, min(_READ, end - at), at)
                    if not data:
                        raise OSError(f"the copy ended at byte {at} of {end} while it was hashed")
                    sha256.update(data)  # hashlib lets go of the GIL for large updates
                    at += len(data)
        except BaseException as exc:  # noqa: BLE001 - raised on the copying thread, which stops copying
            failed.append(exc)

    hasher = threading.Thread(target=hash_copy, name="trainflow-hash-copy", daemon=True)
    hasher.start()
    try:
        done, step = 0, first
        while step and not failed:
            done += step
            copied.put(done)
            progress(step)
            step = _copy_file_range(src, dest, _STEP, done, done)  # type: ignore[misc]
    except BaseException:
        stop.set()
        raise
    finally:
        copied.put(None)
        hasher.join()
    if failed:
        raise failed[0]
    return sha256.hexdigest()
