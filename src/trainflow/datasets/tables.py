"""CSV and Parquet datasets: numeric feature columns and one label column, as float32 [N, F] and int64 labels.

Tables are read a batch of rows at a time (`table_reader`) and labels become small integer codes, so memory
stays flat however many rows there are. Where the row count is known before reading (Parquet's metadata),
each row goes straight to the training or the test array, the training rows' statistics summed on the
way; a CSV's rows go to raw files on the cache's disk first (a large CSV's byte ranges parsed side by side,
one a core), and a second pass splits them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

from trainflow.datasets.arrays import Built
from trainflow.datasets.checks import FEATURE_LIMIT, FeatureSums
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.formats import FormatOptions
from trainflow.datasets.layout import cached_path
from trainflow.datasets.row_files import CHUNK_BYTES, NpyRows, raw_rows
from trainflow.datasets.table_labels import LabelCodes, labels_of
from trainflow.datasets.table_reader import Batch, NotNumbers, Table, nulls_of, open_table, values_of

LABEL_COLUMNS = ("label", "target", "class", "y")  # tried in order when --label-column is not given
TEST_FRACTION = 0.2  # of a single table, held out (seeded, so every sync splits alike)


F32 = np.dtype(np.float32)
Rows = Callable[[int, np.ndarray], None]  # where a table's feature rows go: (first row's index, float32 rows)


@dataclass(frozen=True)
class _Read:
    """A table read through: its row count and its labels as codes (its features went where the pass sent them)."""

    table: Table
    rows: int
    codes: np.ndarray


class _Features:
    """The cached feature arrays, written as the rows are read; the training rows' statistics summed on the way."""

    def __init__(self, work: Path, width: int, stack: ExitStack) -> None:
        self.width = width
        self.train = stack.enter_context(NpyRows(work / "x_train.npy", F32, width))
        self.test = stack.enter_context(NpyRows(work / "x_test.npy", F32, width))
        self.sums = FeatureSums(width)

    def to_train(self, start: int, block: np.ndarray) -> None:
        self.train.write(block)
        self.sums.add(block)

    def to_test(self, start: int, block: np.ndarray) -> None:
        self.test.write(block)

    def split(self, held: np.ndarray, name: str) -> Rows:
        """Rows to the test array where `held` (indexed by row) is True, to the training array elsewhere."""

        def rows(start: int, block: np.ndarray) -> None:
            mask = held[start : start + len(block)]
            if len(mask) != len(block):
                raise DataFormatError(f"{name} holds more rows than its metadata says ({len(held)}): write it again")
            self.to_train(start, block[~mask])
            self.test.write(block[mask])

        return rows

    def restart(self) -> None:
        self.train.restart()
        self.test.restart()
        self.sums = FeatureSums(self.width)


def build_table(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    tables = _tables(names, options)
    opened = {name: open_table(cached_path(directory, name), name) for name in tables.values()}
    label = _label_column(options.label_column, {n: t.columns for n, t in opened.items()})
    features = _features(opened, label)
    codes = LabelCodes()
    with ExitStack() as stack:
        out = _Features(work, len(features), stack)
        if "all" in tables:
            single, held = _read_single(opened[tables["all"]], features, label, codes, work, out)
            read = {"all": single}
        else:
            read = {
                "train": _read(opened[tables["train"]], features, label, codes, out.to_train, out.restart),
                "test": _read(opened[tables["test"]], features, label, codes, out.to_test, out.test.restart),
            }
        x_files = {"x_train": out.train.close(), "x_test": out.test.close()}
    for part in read.values():
        empty = codes.first(part.codes, "")
        if empty is not None:
            raise DataFormatError(
                f"line {empty + 2} of {part.table.name} has no '{label}': fill in the label of every row"
            )
    if "all" in read:
        masks = {"test": held, "train": ~held}
        read = {"train": read["all"], "test": read["all"]}
        shown = {"train": f"{tables['all']} (training part)", "test": f"{tables['all']} (held-out part)"}
    else:
        masks = {s: np.ones(r.rows, dtype=bool) for s, r in read.items()}
        shown = dict(tables)
    raw = {s: read[s].codes[masks[s]] for s in ("train", "test")}
    y, classes = labels_of(codes, raw, shown)
    built: dict[str, str | Path] = dict(x_files)
    for split in ("train", "test"):
        built[f"y_{split}"] = work / f"y_{split}.npy"
        np.save(built[f"y_{split}"], y[split])
    return Built(
        built,
        classes,
        shown_as={f"{r}_{s}": shown[s] for r in ("x", "y") for s in ("train", "test")},
        normalization=out.sums.normalization() if out.sums.rows else None,
        finite=True,  # every value passed _numbers' check, and a float64 within float32's range stays finite in it
    )


def _read_single(
    table: Table, features: list[str], label: str, codes: LabelCodes, work: Path, out: _Features
) -> tuple[_Read, np.ndarray]:
    """A single table read into both arrays, and its held-out rows (one pass when its row count is known up front)."""
    if table.rows is not None:
        held = _held_out(table.rows)
        read = _read(table, features, label, codes, out.split(held, table.name), out.restart)
        if read.rows != table.rows:
            raise DataFormatError(
                f"{table.name} holds {read.rows} rows where its metadata says {table.rows}: write it again"
            )
        return read, held
    # A CSV's row count is known only at its end: the rows go to raw files first, then to the two arrays.
    read, paths = _read_raw(table, features, label, codes, work)
    held = _held_out(read.rows)
    split = out.split(held, table.name)
    step = max(1, CHUNK_BYTES // (4 * len(features)))
    start = 0
    for path in paths:
        for block in raw_rows(path, F32, len(features), step):
            split(start, block)
            start += len(block)
        path.unlink()
    return read, held


def _read_raw(table: Table, features: list[str], label: str, codes: LabelCodes, work: Path) -> tuple[_Read, list[Path]]:
    """A CSV's feature rows into raw files, in order: its byte ranges read side by side where it has several.

    A range that meets anything to refuse or to read as text stops them all, and the table is read again from
    its start on one thread, which names the row by its line in the file.
    """
    raw = work / f".{PurePosixPath(table.name).name}.rows"
    segments = table.segments([*features, label], features, coded=(label,))
    if len(segments) > 1:
        try:
            return _read_segments(table, segments, features, label, codes, raw)
        except (DataFormatError, NotNumbers):
            pass
    with open(raw, "wb") as f:

        def again() -> None:
            f.seek(0)
            f.truncate()

        return _read(table, features, label, codes, lambda _, block: block.tofile(f), again), [raw]


class _Stopped(Exception):
    """Another range of the table failed: this one stops at its next batch."""


def _read_segments(
    table: Table, segments: list[Iterator[Batch]], features: list[str], label: str, codes: LabelCodes, raw: Path
) -> tuple[_Read, list[Path]]:
    """Each byte range's rows into its own raw file on its own thread; the labels' codes merged in file order."""
    paths = [raw.with_name(f"{raw.name}.{k}") for k in range(len(segments))]
    stop = threading.Event()

    def read(k: int) -> tuple[LabelCodes, _Read]:
        own = LabelCodes()

        def rows(_: int, block: np.ndarray) -> None:
            if stop.is_set():
                raise _Stopped
            block.tofile(f)

        try:
            with open(paths[k], "wb") as f:
                return own, _read_as(table, segments[k], features, label, own, rows)
        except BaseException:
            stop.set()
            raise

    try:
        with ThreadPoolExecutor(len(segments)) as pool:
            futures = [pool.submit(read, k) for k in range(len(segments))]
            try:
                wait(futures)
            except BaseException:  # interrupted: the ranges stop at their next batch, then the pool is left
                stop.set()
                raise
        failed = [e for e in (f.exception() for f in futures) if e is not None and not isinstance(e, _Stopped)]
        if failed:
            raise failed[0]
        parts = [future.result() for future in futures]
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    merged = [codes.merged(own, part.codes) for own, part in parts]
    return _Read(table, sum(part.rows for _, part in parts), np.concatenate(merged)), paths


def _tables(names: Sequence[str], options: FormatOptions) -> dict[str, str]:
    suffix = ".parquet" if options.format == "parquet" or not any(n.lower().endswith(".csv") for n in names) else ".csv"
    files = sorted(n for n in names if n.lower().endswith(suffix))
    train = [n for n in files if "train" in PurePosixPath(n).name.lower()]
    test = [n for n in files if "test" in PurePosixPath(n).name.lower()]
    if len(files) == 1:
        return {"all": files[0]}
    if len(train) == 1 and len(test) == 1:
        return {"train": train[0], "test": test[0]}
    raise DataFormatError(
        f"cannot tell the training table from the test table among {', '.join(files)}: "
        f"sync one {suffix} file, or two named like train{suffix} and test{suffix}"
    )


def _label_column(declared: str | None, columns: dict[str, list[str]]) -> str:
    for name, names in columns.items():
        if declared is not None and declared not in names:
            raise DataFormatError(
                f"{name} has no column '{declared}' (its columns: {', '.join(names)}): "
                "name the label column with --label-column"
            )
    if declared is not None:
        return declared
    first = next(iter(columns))
    found = next((c for c in LABEL_COLUMNS if c in columns[first]), None)
    if found is None:
        raise DataFormatError(
            f"{first} has no column named {', '.join(LABEL_COLUMNS)} (its columns: "
            f"{', '.join(columns[first])}): name the label column with --label-column"
        )
    return found


def _features(opened: dict[str, Table], label: str) -> list[str]:
    first = next(iter(opened.values()))
    features = [c for c in first.columns if c != label]
    for name, table in opened.items():
        if [c for c in table.columns if c != label] != features:
            raise DataFormatError(
                f"{name} has columns {', '.join(table.columns)}, not those of {first.name}: "
                "give both tables the same columns"
            )
    if not features:
        raise DataFormatError(f"{first.name} has no feature columns besides the label: add the features")
    return features


def _read(
    table: Table, features: list[str], label: str, codes: LabelCodes, rows: Rows, restart: Callable[[], None]
) -> _Read:
    wanted = [*features, label]
    try:
        return _read_as(table, table.batches(wanted, features, (label,)), features, label, codes, rows)
    except NotNumbers:  # rare: text pyarrow does not parse (" 1.5", "1_000") or a bad value to quote as written
        restart()
        return _read_as(table, table.batches(wanted, [], (label,)), features, label, codes, rows)


def _read_as(
    table: Table, batches: Iterator[Batch], features: list[str], label: str, codes: LabelCodes, rows: Rows
) -> _Read:
    parts: list[np.ndarray] = []
    count = 0
    for batch in batches:
        block = np.empty((batch.rows, len(features)), dtype=np.float32)
        with np.errstate(over="ignore"):  # a number past float32 becomes infinite here, and _within refuses it
            for j, column in enumerate(features):
                block[:, j] = _column(batch.columns[column])
        if not _within(block):
            for column in features:  # the first column and row that is not a usable number, named
                _numbers(table, batch, column)
        rows(batch.start, block)
        parts.append(codes.encode(batch.columns[label], table.text))
        count += batch.rows
    return _Read(table, count, np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32))


def _within(block: np.ndarray) -> bool:
    """Every value of the float32 block strictly within ±FEATURE_LIMIT, so the numbers it was cast from were within it.

    Two reductions, no temporary; a NaN makes min or max NaN and fails it; a number past the limit becomes at least
    the limit (or infinite) in float32. A value of exactly ±FEATURE_LIMIT fails it too and is checked column by column.
    """
    return not block.size or (block.min() > -FEATURE_LIMIT and block.max() < FEATURE_LIMIT)


def _column(values: pa.Array) -> np.ndarray:
    """One batch of a feature column as float64 (float32 as it is), NaN where a value is missing or not a number."""
    numbers = _floats(values)
    if numbers is None:  # text pyarrow does not read as a number (" 1.5", "1_000"): each value as Python reads it
        numbers = np.array([_number(v) for v in values.to_pylist()], dtype=np.float64)
    return numbers


def _numbers(table: Table, batch: Batch, column: str) -> None:
    """DataFormatError naming the first row of a batch's feature column that is not a usable number (NotNumbers for
    a parsed one: the message quotes the value as written, so the table is read again as text)."""
    values = batch.columns[column]
    numbers = _column(values)
    within = np.abs(numbers) <= FEATURE_LIMIT  # False for NaN as well
    if within.all():
        return
    if batch.parsed:
        raise NotNumbers(column)
    i = int(np.argmin(within))
    value = table.text(values[i].as_py())
    row = batch.start + i + 2
    if math.isfinite(numbers[i]):
        raise DataFormatError(
            f"column '{column}' of {table.name} holds {value[:40]} (row {row}), beyond float32's "
            f"±{FEATURE_LIMIT:.1e} that the models compute in: scale the column down"
        )
    raise DataFormatError(
        f"column '{column}' of {table.name} is not numeric (row {row}: {value[:40]!r}): drop it or encode it as numbers"
    )


def _floats(values: pa.Array) -> np.ndarray | None:
    """The column as float32 or float64 (as it is, else cast to float64), NaN where null; None for what pyarrow does
    not cast to float64."""
    if values.type not in (pa.float32(), pa.float64()):
        kind = values.type
        if not (pa.types.is_string(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            return None  # booleans, decimals, dates: as their text reads
        import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]  # ~0.06 s of CPU: rarely needed

        try:
            values = pc.cast(values, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    numbers = values_of(values)
    if values.null_count:
        numbers = np.where(nulls_of(values), np.nan, numbers)
    return numbers


def _number(value: object) -> float:
    try:
        return float(str(value).strip()) if value is not None else math.nan
    except ValueError:
        return math.nan


def _held_out(rows: int) -> np.ndarray:
    """The rows of a single table held out for testing: the same for the same number of rows, every sync."""
    order = np.random.default_rng(0).permutation(rows)
    held = np.zeros(rows, dtype=bool)
    held[order[: max(1, int(rows * TEST_FRACTION))]] = True
    return held
