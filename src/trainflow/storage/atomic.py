"""Whole-file writes that a concurrent reader never sees half done (kept light: step processes import it)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes, sync: bool = True) -> None:
    """Write `path` through a temp file in the same directory and rename it into place.

    `sync=False` skips the fsync: for files only read back on this machine soon after (a step's
    outputs), where a reader seeing the whole file matters and surviving a power cut does not.
    """
    atomic_write_chunks(path, (data,), sync)


def atomic_write_chunks(path: Path, chunks: Iterable[bytes], sync: bool = True) -> None:
    """`atomic_write_bytes` of the concatenated `chunks`, written as they come (never all in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # tempfile.mkstemp's naming, without importing tempfile (and shutil, random) into every step process.
    tmp = path.parent / f".{path.name}.{os.getpid()}-{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
