"""Arrays read and written a block of rows at a time, so preparing a dataset takes memory that does not grow with it."""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import numpy as np

CHUNK_BYTES = 16 << 20  # rows are read and written this much at a time


def rows_per_chunk(x: np.ndarray, chunk_bytes: int = CHUNK_BYTES) -> int:
    """How many examples of `x` make about `chunk_bytes`."""
    return max(1, chunk_bytes // max(1, int(np.prod(x.shape[1:], dtype=np.int64)) * x.dtype.itemsize))


def row_chunks(x: np.ndarray, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, copy of up to `rows` rows) over `x`; a memory-mapped file's pages are let go after each block.

    A memmap's pages stay resident (and counted in the process's memory) once touched: a pass over a
    3 GB array would otherwise hold 3 GB by its end.
    """
    for start in range(0, x.shape[0], rows):
        chunk = np.array(x[start : start + rows])
        _release(x)
        yield start, chunk


def _release(x: np.ndarray) -> None:
    mapped = getattr(x, "_mmap", None)  # set by np.memmap and np.load(mmap_mode=...) on the array and its views
    # A shared mapping's pages come back from the page cache; a private one ('c') would lose its changes.
    if isinstance(mapped, mmap.mmap) and getattr(x, "mode", "c") != "c" and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)


def write_npy(dest: Path, dtype: np.dtype, shape: tuple[int, ...], blocks: Iterable[np.ndarray]) -> Path:
    """Write an .npy file of `shape` from C-ordered blocks of rows; ValueError when they do not add up to it."""
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    written = 0
    with open(dest, "wb") as out:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(out, header)
        for block in blocks:
            data = np.ascontiguousarray(block, dtype=dtype)
            written += data.nbytes
            data.tofile(out)
    if written != expected:
        raise ValueError(f"{dest.name}: wrote {written} bytes where its shape {shape} needs {expected}")
    return dest


def raw_rows(path: Path, dtype: np.dtype, width: int, rows: int) -> Iterator[np.ndarray]:
    """Blocks of up to `rows` rows of a headerless file of `width` values per row, read (not mapped)."""
    with open(path, "rb") as f:
        while True:
            block = np.fromfile(f, dtype=dtype, count=rows * width)
            if block.size == 0:
                return
            yield block.reshape(-1, width)


class NpyRows:
    """An .npy file of rows of `width` values, written as they come; the row count goes into its header at the end.

    The header's room is that of the largest row count, padded with spaces (as numpy pads its own).
    """

    def __init__(self, dest: Path, dtype: np.dtype, width: int) -> None:
        self.path, self.dtype, self.width, self.rows = dest, dtype, width, 0
        self._room = len(_npy_header(dtype, (1 << 62, width)))
        self._file = open(dest, "w+b")  # noqa: SIM115 - closed by close() or on leaving the with block
        self._file.seek(self._room)

    def __enter__(self) -> NpyRows:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._file.close()

    def write(self, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block, dtype=self.dtype).reshape(-1, self.width)
        data.tofile(self._file)
        self.rows += len(data)

    def write_at(self, row: int, block: np.ndarray) -> None:
        """Rows `row` onwards, written in place (threads may each write their own rows; `holds` counts them)."""
        data = np.ascontiguousarray(block, dtype=self.dtype).reshape(-1).view(np.uint8).data
        at = self._room + row * self.width * self.dtype.itemsize
        while data:
            done = os.pwrite(self._file.fileno(), data, at)
            data, at = data[done:], at + done

    def read_at(self, row: int, count: int) -> np.ndarray:
        """`count` rows from `row` on, as written so far."""
        size = count * self.width * self.dtype.itemsize
        data = os.pread(self._file.fileno(), size, self._room + row * self.width * self.dtype.itemsize)
        if len(data) != size:
            raise ValueError(f"{self.path.name}: rows {row} to {row + count - 1} were not written")
        return np.frombuffer(data, dtype=self.dtype).reshape(count, self.width)

    def holds(self, rows: int) -> None:
        """The file holds `rows` rows (written with `write_at`): its header's count once closed."""
        self.rows = rows

    def restart(self) -> None:
        """Drop every row written so far."""
        self._file.seek(self._room)
        self._file.truncate()
        self.rows = 0

    def close(self) -> Path:
        self._file.seek(0)
        self._file.write(_npy_header(self.dtype, (self.rows, self.width), self._room))
        self._file.close()
        return self.path


def _npy_header(dtype: np.dtype, shape: tuple[int, ...], size: int | None = None) -> bytes:
    """An .npy format 1.0 header, `size` bytes long (default: numpy's own length, a multiple of 64)."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    total = size or -(-(10 + len(text) + 1) // 64) * 64
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", total - 10) + text.encode("latin1").ljust(total - 11) + b"\n"
