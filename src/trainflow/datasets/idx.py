"""IDX files (the MNIST format): decompress once into the cache, then memory-map the array."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from trainflow.datasets.errors import DatasetError

# IDX type codes -> big-endian numpy dtypes (the format's own table)
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_header(path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Parse an uncompressed IDX header: (dtype, shape, data offset); DatasetError if not IDX."""
    with open(path, "rb") as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _DTYPES or magic[3] == 0:
            raise DatasetError(f"{path} is not an IDX file (bad magic number {magic.hex() or 'empty'})")
        ndim = magic[3]
        dims_raw = f.read(4 * ndim)
    if len(dims_raw) != 4 * ndim:
        raise DatasetError(f"{path} is not an IDX file: header cut short")
    shape = struct.unpack(f">{ndim}I", dims_raw)
    dtype = np.dtype(_DTYPES[magic[2]])
    offset = 4 + 4 * ndim
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = path.stat().st_size
    if actual != expected:
        raise DatasetError(
            f"{path} is damaged: header says {shape} of {dtype.name} ({expected} bytes) but the file has {actual}; "
            "sync the dataset again"
        )
    return dtype, tuple(shape), offset


def open_idx(path: Path) -> np.memmap:
    """Memory-map an uncompressed IDX file, read-only, with the shape its header declares."""
    dtype, shape, offset = read_header(path)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def unpack(gz_path: Path, dest: Path) -> Path:
    """Decompress `gz_path` into `dest` unless it is already there; atomic, safe to race."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(gz_path, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
        os.replace(tmp, dest)
    except (OSError, EOFError, zlib.error) as exc:
        Path(tmp).unlink(missing_ok=True)
        raise DatasetError(f"{gz_path} is not a valid gzip file ({exc}); sync the dataset again") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write `array` as IDX (gzipped if the name ends in .gz): for tests and synthetic datasets."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise DatasetError(f"IDX cannot hold dtype {array.dtype}")
    header = bytes([0, 0, codes[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_DTYPES[codes[native]]).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)
