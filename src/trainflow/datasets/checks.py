"""Checks and fix-ups every format's arrays go through before a descriptor is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from trainflow.datasets.arrays import Built
from trainflow.datasets.descriptor import Normalization
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.row_files import row_chunks, rows_per_chunk, write_npy

MAX_CLASSES = 1 << 16
# Models take float32: a float64 feature beyond its range becomes inf on the way in, and its square overflows the
# descriptor's standardisation into NaN.
FEATURE_LIMIT = float(np.finfo(np.float32).max)
_SUMS_BYTES = 256 << 10  # of float64 values and their squares each, summed at a time
_STATS_ROWS = 65536  # rows summed at a time (fixed: the sums, and so the statistics, depend on it)
_CHANNELS = (1, 3, 4)
Arrays = dict[str, np.ndarray]


def channels_first(arrays: Arrays, work: Path | None, built: Built) -> Arrays:
    """Image arrays stored [N, H, W, C] rewritten as [N, C, H, W] (what the models and the descriptor use)."""
    for role in ("x_train", "x_test"):
        x = arrays[role]
        if x.ndim == 4 and x.shape[-1] in _CHANNELS and x.shape[1] not in _CHANNELS:
            arrays[role] = _rewrite(np.moveaxis(x, -1, 1), role, work, built)
    return arrays


def input_shape(arrays: Arrays, names: dict[str, str]) -> tuple[int, ...]:
    """One example's shape, channels first; DataFormatError naming the file when the splits disagree."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype.kind not in "biuf":
            raise DataFormatError(f"{names[f'x_{split}']} holds {x.dtype} values: store the examples as numbers")
        if x.ndim not in (2, 3, 4) or x.shape[0] == 0:
            raise DataFormatError(
                f"{names[f'x_{split}']} has shape {x.shape}: store examples as [N, features], "
                "[N, H, W] or [N, C, H, W] with N > 0"
            )
        if 0 in x.shape[1:]:
            raise DataFormatError(
                f"{names[f'x_{split}']} has shape {x.shape}: its examples hold no values; store at least "
                "one feature (or pixel) per example"
            )
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataFormatError(
                f"{names[f'y_{split}']} has shape {y.shape} for {x.shape[0]} examples in "
                f"{names[f'x_{split}']}: store one label per example, shape [{x.shape[0]}]"
            )
    train, test = arrays["x_train"].shape[1:], arrays["x_test"].shape[1:]
    if train != test:
        raise DataFormatError(
            f"training examples are {_shown(train)} ({names['x_train']}) but test examples are "
            f"{_shown(test)} ({names['x_test']}): give both splits the same shape"
        )
    return (1, *train) if len(train) == 2 else tuple(int(n) for n in train)


def finite_features(arrays: Arrays, names: dict[str, str]) -> None:
    """DataFormatError naming the file and the first example that holds NaN, an infinity or a value past float32."""
    for role in ("x_train", "x_test"):
        x = arrays[role]
        if x.dtype.kind != "f":
            continue  # integers are always finite and within float32's range
        for start, chunk in row_chunks(x, rows_per_chunk(x)):
            within = np.abs(chunk) <= FEATURE_LIMIT  # False for NaN as well
            if not within.all():
                _refuse_values(names[role], start, chunk, within)


def _refuse_values(name: str, start: int, chunk: np.ndarray, within: np.ndarray) -> None:
    row = int(np.argmin(within.reshape(len(chunk), -1).all(axis=1)))
    if np.isfinite(chunk[row]).all():
        problem = f"values too large for float32 (beyond ±{FEATURE_LIMIT:.1e}), which the models compute in"
    else:
        problem = "NaN or infinite values"
    raise DataFormatError(
        f"{name} holds {problem} (example {start + row} is the first): replace them with finite numbers "
        "or drop those examples at the source"
    )


def integer_labels(arrays: Arrays, work: Path | None, built: Built, names: dict[str, str]) -> Arrays:
    """Labels as integers: whole-number floats are rewritten as int64; anything else is refused."""
    for role in ("y_train", "y_test"):
        y = arrays[role]
        if y.dtype.kind in "biu":
            continue
        values = np.asarray(y)
        if y.dtype.kind != "f" or not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            bad = _first(values, lambda v: not (np.issubdtype(type(v), np.number) and float(v).is_integer()))
            raise DataFormatError(
                f"labels in {names[role]} are not integers (found {bad!r}): store the class "
                "index of each example (0, 1, 2, ...)"
            )
        arrays[role] = _rewrite(values.astype(np.int64), role, work, built)
    return arrays


def class_names(arrays: Arrays, names: dict[str, str]) -> tuple[str, ...]:
    """'0'..'K-1' for integer labels, K from the training labels; DataFormatError for labels out of range."""
    for role in ("y_train", "y_test"):
        y = np.asarray(arrays[role])
        low = int(y.min())
        if low < 0 or int(y.max()) >= MAX_CLASSES:
            bad = low if low < 0 else int(y.max())
            raise DataFormatError(
                f"label {bad} in {names[role]} is out of range: labels are class indices "
                f"0 to {MAX_CLASSES - 1}; fix the labels"
            )
    count = int(np.asarray(arrays["y_train"]).max()) + 1
    top = int(np.asarray(arrays["y_test"]).max())
    if top >= count:
        raise DataFormatError(
            f"label {top} in {names['y_test']} is out of range: the training labels "
            f"({names['y_train']}) only go up to {count - 1}; fix the label or add training "
            "examples of that class"
        )
    return tuple(str(i) for i in range(count))


def normalization(x_train: np.ndarray, shape: tuple[int, ...]) -> Normalization:
    """Images: scaled to [0, 1]; tables: each feature standardised with the training split's mean and std."""
    if len(shape) == 3:
        scale = 1 / 255 if x_train.dtype == np.uint8 else 1.0
        return Normalization(scale, (0.0,) * shape[0], (1.0,) * shape[0])
    sums = FeatureSums(shape[0])
    for _, rows in row_chunks(x_train, _STATS_ROWS):
        sums.add(rows)
    return sums.normalization()


class FeatureSums:
    """Each feature's sum and sum of squares over rows given in order, as `normalization` sums a stored array.

    Rows are summed in the same fixed blocks of rows, so the statistics are the same bits whichever way
    the rows arrive (a table's conversion feeds them as it writes the training array).
    """

    def __init__(self, width: int) -> None:
        self._total, self._squares, self.rows = np.zeros(width), np.zeros(width), 0
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0

    def add(self, rows: np.ndarray) -> None:
        self._pending.append(rows)  # kept until summed: callers pass rows they no longer change
        self._pending_rows += len(rows)
        self.rows += len(rows)
        if self._pending_rows >= _STATS_ROWS:
            held = np.concatenate(self._pending)
            whole = len(held) - len(held) % _STATS_ROWS
            for start in range(0, whole, _STATS_ROWS):
                self._sum(held[start : start + _STATS_ROWS])
            self._pending, self._pending_rows = [held[whole:]], len(held) - whole

    def normalization(self) -> Normalization:
        if self._pending_rows:
            self._sum(np.concatenate(self._pending))
            self._pending, self._pending_rows = [], 0
        mean = self._total / self.rows
        std = np.sqrt(np.maximum(self._squares / self.rows - mean * mean, 0.0))
        std[std < 1e-12] = 1.0  # a constant feature: leave it unscaled rather than divide by zero
        return Normalization(1.0, tuple(float(m) for m in mean), tuple(float(s) for s in std))

    @classmethod
    def of_parts(
        cls, width: int, rows: int, parts: list[dict[int, Sums]], read: Callable[[int, int], np.ndarray]
    ) -> FeatureSums:
        """The sums of `rows` rows from the blocks their parts summed whole (`BlockSums.finish`), added in block order;
        a block no part held whole is summed from `read(first row, count)`."""
        held = {block: part_sums for part in parts for block, part_sums in part.items()}
        sums = cls(width)
        for block in range(-(-rows // _STATS_ROWS)):
            first = block * _STATS_ROWS
            total, squares = held.get(block) or block_sums(read(first, min(_STATS_ROWS, rows - first)))
            sums._total, sums._squares = sums._total + total, sums._squares + squares
        sums.rows = rows
        return sums

    def _sum(self, rows: np.ndarray) -> None:
        total, squares = block_sums(rows)
        self._total, self._squares = self._total + total, self._squares + squares


Sums = tuple[np.ndarray, np.ndarray]  # each feature's sum and sum of squares over a block of rows


def block_sums(rows: np.ndarray) -> Sums:
    """Each feature's sum and sum of squares over one block of rows, in float64.

    numpy sums a row-major array of two or more columns down its columns a row at a time, so such a block is summed
    a few hundred KiB at a time with the running sums as the first row: the same additions in the same order as the
    whole block cast at once, the bits alike, without a float64 copy of the block (mapped afresh for each block:
    ~6% of a Parquet conversion's CPU zeroing pages). One column, or a column-major block, numpy sums pairwise.
    """
    width = rows.shape[1]
    if width < 2 or not rows.flags.c_contiguous:
        whole = rows.astype(np.float64)  # a copy, squared in place: half the memory traffic of a second array
        total = whole.sum(axis=0)
        np.multiply(whole, whole, out=whole)
        return total, whole.sum(axis=0)
    step = max(1, _SUMS_BYTES // (8 * width))
    values, squares = np.empty((2, min(step, len(rows)) + 1, width))
    sums: Sums | None = None
    for start in range(0, len(rows), step):
        part = rows[start : start + step]
        first = 0 if sums is None else 1  # row 0 holds the running sums from the second part on
        v, q = values[: len(part) + first], squares[: len(part) + first]
        v[first:] = part
        np.multiply(v[first:], v[first:], out=q[first:])
        if sums is not None:
            v[0], q[0] = sums
        sums = v.sum(axis=0), q.sum(axis=0)
    return sums if sums is not None else (np.zeros(width), np.zeros(width))


class BlockSums:
    """The sums of the statistics' blocks that rows `first` to `end - 1` of `total` hold whole, as those rows come in
    order (a part of the training rows converted on its own thread); a block across two parts is left to the caller.
    """

    def __init__(self, first: int, end: int, total: int) -> None:
        self.blocks: dict[int, Sums] = {}  # by block: rows block * _STATS_ROWS onwards
        self._at = first  # the row the next rows start at
        self._from = -(-first // _STATS_ROWS) * _STATS_ROWS  # where the first whole block starts
        self._last = end == total  # the part ends the rows: its last block is whole even when short
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0

    def add(self, rows: np.ndarray) -> None:
        at, self._at = self._at, self._at + len(rows)
        if self._at <= self._from:
            return
        self._pending.append(rows[max(0, self._from - at) :])
        self._pending_rows += len(self._pending[-1])
        if self._pending_rows >= _STATS_ROWS:
            held = np.concatenate(self._pending)
            whole = len(held) - len(held) % _STATS_ROWS
            for start in range(0, whole, _STATS_ROWS):
                self.blocks[self._from // _STATS_ROWS] = block_sums(held[start : start + _STATS_ROWS])
                self._from += _STATS_ROWS
            self._pending, self._pending_rows = [held[whole:]], len(held) - whole

    def finish(self) -> dict[int, Sums]:
        """The blocks summed; the short last block too where this part ends the rows."""
        if self._last and self._pending_rows:
            self.blocks[self._from // _STATS_ROWS] = block_sums(np.concatenate(self._pending))
        self._pending, self._pending_rows = [], 0
        return self.blocks


def _rewrite(array: np.ndarray, role: str, work: Path | None, built: Built) -> np.ndarray:
    if work is None:
        raise DataFormatError(
            f"the {role} array needs converting: sync the folder into the cache first (trainflow data sync)"
        )
    path = work / f"{role}.npy"
    write_npy(path, array.dtype, array.shape, (rows for _, rows in row_chunks(array, rows_per_chunk(array))))
    built.arrays[role] = path
    return np.load(path, mmap_mode="r")


def _first(values: np.ndarray, bad: object) -> object:
    for value in values.ravel()[:1_000_000]:
        if bad(value):  # type: ignore[operator]
            return value.item() if hasattr(value, "item") else value
    return values.ravel()[0]


def _shown(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)
