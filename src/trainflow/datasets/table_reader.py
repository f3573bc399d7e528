"""CSV and Parquet tables read a batch of rows at a time (pyarrow's streaming readers), never whole."""

from __future__ import annotations

import csv
import io
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.csv as pa_csv  # type: ignore[import-untyped, unused-ignore]

from trainflow.cores import usable_cores
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.side_by_side import side_by_side

BATCH_BYTES = 1 << 20  # of CSV text per batch (pyarrow holds several blocks: 4 MiB ones took ~150 MiB)
BATCH_ROWS = 65536  # of a Parquet file per batch
# pyarrow's streaming CSV reader parses on one thread (its `use_threads` gains nothing): a CSV of at least twice
# this many bytes is parsed in byte ranges side by side, one a core, as its whole-file `read_csv` does.
SEGMENT_BYTES = 8 << 20
COUNT_BYTES = 4 << 20  # of a CSV read at a time to count its lines
_FIELD_LIMIT = (1 << 31) - 1  # the csv module's longest value when it reads a table again for a line number
_TAIL_BYTES = 4096  # of a CSV's end read for its last line breaks (more blank lines than fit: counted as read)
MAX_SEGMENTS = 4  # each range holds pyarrow's blocks in flight: memory grows with the ranges, never with the rows
# A Parquet file of at least twice this many rows is converted in ranges of whole row groups side by side, one a core.
SEGMENT_ROWS = 1 << 18
# Each range's reader holds about three times its row group's bytes (read, decoded, batched): the ranges' row groups
# in flight are kept under this, so memory does not grow with the cores where row groups are large.
GROUPS_IN_FLIGHT = 128 << 20


_VIEWS: dict[pa.DataType, np.dtype[Any]] = {
    pa.float32(): np.dtype(np.float32),
    pa.float64(): np.dtype(np.float64),
    **{kind: np.dtype(str(kind)) for kind in (pa.int8(), pa.int16(), pa.int32(), pa.int64())},
    **{kind: np.dtype(str(kind)) for kind in (pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64())},
}


def values_of(array: pa.Array) -> np.ndarray:
    """A float or integer array's values as a numpy view of its buffer (a null's slot holds anything).

    pyarrow's own `to_numpy` imports pandas on first use: ~0.25 s of CPU (a second of wall time under load).
    """
    dtype = _VIEWS[array.type]
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def nulls_of(array: pa.Array) -> np.ndarray:
    """Where an array (with nulls) holds null, from its validity bitmap (a clear bit is a null)."""
    bits = np.unpackbits(np.frombuffer(array.buffers()[0], dtype=np.uint8), bitorder="little")
    return bits[array.offset : array.offset + len(array)] == 0


class SpansLines(DataFormatError):
    """A quoted value of a CSV holds a line break where its text was cut into blocks: read it again with `newlines`."""


class NotNumbers(Exception):
    """A column asked for as numbers holds something else: read the table again as text to say what and where."""


@dataclass(frozen=True)
class Batch:
    """Rows `start`, `start + 1`, ... of a table (0 = the first data row), one pyarrow array per column."""

    start: int
    columns: dict[str, pa.Array]
    parsed: bool = False  # the columns asked for as numbers were parsed by pyarrow (their text is gone)
    exact: bool = True  # `start` counted by reading, not a range's guess from its lines (then a message is dropped)

    def where(self, table: Table, row: int) -> str:
        """Where the batch's row `row` is in `table`; a guess where the batch's start is one (a CSV range's)."""
        return table.where(self.start + row) if self.exact else f"data row {self.start + row + 1}"

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values())))


@dataclass(frozen=True)
class Table:
    """One table file: its column names, how its values read as text, and its rows batch by batch."""

    name: str
    path: Path
    columns: list[str]
    text: Callable[[object], str]  # a value as the table's text: what labels are and what messages quote
    csv: bool
    rows: int | None = None  # known before reading (a Parquet file's metadata says it); None for a CSV
    groups: tuple[int, ...] = ()  # a Parquet file's rows per row group, from its metadata
    group_bytes: int = 0  # its largest row group's size uncompressed, from its metadata

    def where(self, row: int) -> str:
        """Where data row `row` (0 = the first) is, as its user would look for it: a CSV's line in the file (its
        header, blank lines and line breaks in quoted values counted, as an editor counts them), a Parquet file's
        row index (from 0, as pandas and pyarrow count). Read again for a CSV: for a message, not for every row."""
        return f"line {_csv_line(self.path, row)}" if self.csv else f"row index {row}"

    def batches(
        self, wanted: list[str], numbers: list[str], coded: tuple[str, ...] = (), newlines: bool = False
    ) -> Iterator[Batch]:
        """Batches of the `wanted` columns; a CSV's `numbers` columns parsed as float64 (NotNumbers if one is not)
        and its `coded` ones as dictionary-encoded text (a label column: no string made per row).

        A CSV's text is cut into blocks at line ends: SpansLines where a cut falls in a quoted value. With `newlines`
        it is cut between rows, quotes and all (a cost pyarrow warns of: for a table that needs it)."""
        return (
            _csv_batches(self, wanted, numbers, coded, newlines=newlines)
            if self.csv
            else _parquet_batches(self, wanted)
        )

    def parts(self, wanted: list[str], numbers: list[str], coded: tuple[str, ...] = ()) -> list[Part]:
        """The table's rows as consecutive ranges to read side by side, one a core; one range for a small table.

        A Parquet file's ranges are whole row groups, their rows from its metadata. A CSV's are byte ranges cut at
        line ends, each counted as its lines: a guess that a blank line or a line break in a quoted value makes
        wrong, so a reader checks the rows it read against it. Each range's batches count rows from the table's
        first row, as `batches` does (`numbers` and `coded` as there).
        """
        if self.csv:
            spans = _csv_ranges(self.path) or [(0, self.path.stat().st_size)]
            counts = side_by_side(len(spans), lambda k, _: _rows_in(self.path, *spans[k]), earlier_go_on=False)
            firsts = itertools.accumulate(counts, initial=0)
            return [
                Part(first, rows, _csv_batches(self, wanted, numbers, coded, span, first, exact=len(spans) == 1))
                for first, rows, span in zip(firsts, counts, spans, strict=False)
            ]
        ranges = _parquet_ranges(self.groups, self.group_bytes) or [(0, self.rows or 0, list(range(len(self.groups))))]
        return [Part(first, rows, _parquet_batches(self, wanted, groups, first)) for first, rows, groups in ranges]


@dataclass(frozen=True)
class Part:
    """Rows `first` to `first + rows - 1` of a table, read as `batches`."""

    first: int
    rows: int
    batches: Iterator[Batch]


def open_table(path: Path, name: str) -> Table:
    """The table's header (nothing else is read yet); DataFormatError when it is not a readable table."""
    if name.lower().endswith(".parquet"):
        import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]  # ~0.03 s of CPU: not for a CSV

        try:
            parquet = pq.ParquetFile(path)
            columns, rows = list(parquet.schema_arrow.names), int(parquet.metadata.num_rows)
            meta = [parquet.metadata.row_group(g) for g in range(parquet.metadata.num_row_groups)]
            groups, largest = (
                tuple(int(g.num_rows) for g in meta),
                max((int(g.total_byte_size) for g in meta), default=0),
            )
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
            raise DataFormatError(f"{name} is not a readable Parquet file ({exc}): write it again") from None
        return Table(
            name,
            path,
            columns,
            lambda v: "" if v is None else str(v),
            csv=False,
            rows=rows,
            groups=groups,
            group_bytes=largest,
        )
    return Table(name, path, _csv_header(path, name), lambda v: str(v).strip(), csv=True)


def _csv_header(path: Path, name: str) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            has_rows = next(reader, None) is not None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataFormatError(
            f"{name} is not a readable CSV file ({exc}): save it as UTF-8 CSV with a header row"
        ) from None
    if not has_rows or not header:
        raise DataFormatError(f"{name} has no header row and data rows: save it as CSV with a header row")
    columns = [c.strip() for c in header]
    if len(set(columns)) != len(columns):
        raise DataFormatError(f"{name} names a column twice ({', '.join(columns)}): give every column its own name")
    return columns


def _csv_line(path: Path, row: int) -> int:
    """The line of a CSV that data row `row` starts on (1 = the header's), as the csv module ends lines and quoted
    values (as pyarrow does, which skips blank lines and numbers records); the rows' count where it cannot read it."""
    limit = csv.field_size_limit(_FIELD_LIMIT)  # 128 KiB by default: a longer value is an error to the csv module
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
            reader = csv.reader(f)
            seen, start = -1, 1  # rows started (the header is row -1); the line the next record starts on
            for record in reader:
                if record:  # a blank line is no row
                    if seen == row:
                        return start
                    seen += 1
                start = reader.line_num + 1
    except (OSError, csv.Error):
        pass
    finally:
        csv.field_size_limit(limit)
    return row + 2


def _rows_in(path: Path, start: int, end: int) -> int:
    """The data rows in bytes `start` to `end` of a CSV if each line is one, read a block at a time (numpy's count
    releases the GIL, so the ranges count side by side): the header, a last line with no line break and blank lines
    at the file's end (pyarrow skips them) counted right; a blank line elsewhere is not, and is found as read."""
    lines = 0
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        for at in range(start, end, COUNT_BYTES):
            block = f.read(min(COUNT_BYTES, end - at))
            lines += int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n")))
        if end == os.fstat(f.fileno()).st_size and end > start:
            f.seek(max(start, end - _TAIL_BYTES))
            tail = f.read(_TAIL_BYTES)
            # The last row's line break, if any, and each blank line after it: 0 where the last row has none.
            lines += 1 - tail[len(tail.rstrip(b"\r\n")) :].count(b"\n")
    return lines - (start == 0)  # the header


def _csv_ranges(path: Path) -> list[tuple[int, int]]:
    """The file cut at line ends into up to one range a core of at least SEGMENT_BYTES each; the header in the first.

    Cutting at a line end is what pyarrow's own chunking does (a quoted value holds no line break unless
    `newlines_in_values` is set, which the reader does not set).
    """
    size = path.stat().st_size
    count = min(MAX_SEGMENTS, usable_cores(), size // SEGMENT_BYTES)
    if count < 2:
        return []
    cuts = [0]
    with open(path, "rb") as f:
        for k in range(1, count):
            f.seek(max(size * k // count, cuts[-1]))
            f.readline()  # to the end of the line the cut falls in (the header's, at the start)
            if f.tell() >= size:
                break
            cuts.append(f.tell())
    return list(zip(cuts, [*cuts[1:], size], strict=True))


class _Range(io.RawIOBase):
    """Bytes `start` to `end` of a file, read without moving a shared file position (each reader its own)."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._at, self._end = start, end

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        size = self._end - self._at if size < 0 else min(size, self._end - self._at)
        data = os.pread(self._fd, size, self._at) if size > 0 else b""
        self._at += len(data)
        return data

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def _csv_batches(
    table: Table,
    wanted: list[str],
    numbers: list[str],
    coded: tuple[str, ...],
    span: tuple[int, int] | None = None,
    start: int = 0,
    *,
    newlines: bool = False,
    exact: bool = True,
) -> Iterator[Batch]:
    bad: list[pa_csv.InvalidRow] = []

    def invalid(row: pa_csv.InvalidRow) -> str:
        bad.append(row)
        return "error"

    # One thread: the parser then numbers rows, so a bad one is named by its line. The header is in the first range.
    skip = 1 if span is None or span[0] == 0 else 0
    read = pa_csv.ReadOptions(use_threads=False, block_size=BATCH_BYTES, skip_rows=skip, column_names=table.columns)
    types = (
        dict.fromkeys(table.columns, pa.string())
        | dict.fromkeys(coded, pa.dictionary(pa.int32(), pa.string()))
        | dict.fromkeys(numbers, pa.float64())
    )
    convert = pa_csv.ConvertOptions(column_types=types, include_columns=wanted)
    parse = pa_csv.ParseOptions(newlines_in_values=newlines, invalid_row_handler=invalid)
    source = table.path if span is None else _Range(table.path, *span)
    try:
        reader = pa_csv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            yield Batch(start, {c: batch.column(c) for c in wanted}, parsed=bool(numbers), exact=exact)
            start += batch.num_rows
    except pa.ArrowInvalid as exc:
        if not newlines and "out of sync with chunker" in str(exc):  # pyarrow's message: no exception type of its own
            raise SpansLines(f"{table.name} holds a line break in a quoted value after data row {start}") from None
        if numbers and not bad:
            raise NotNumbers(str(exc)) from None
        if bad:
            row = bad[0]  # pyarrow numbers records from the header's, 1, whether it read the header or not
            where = table.where(row.number - 2) if exact and row.number > 1 else f"after data row {start}"
            raise DataFormatError(
                f"{table.name} {where} has {row.actual_columns} values for {row.expected_columns} columns: fix that row"
            ) from None
        raise DataFormatError(
            f"{table.name} is not a readable CSV file ({exc}, after data row {start}): "
            "save it as UTF-8 CSV with a header row"
        ) from None
    finally:
        if isinstance(source, _Range):
            source.close()


def _parquet_ranges(groups: tuple[int, ...], group_bytes: int) -> list[tuple[int, int, list[int]]]:
    """Row groups in up to one range a core of at least SEGMENT_ROWS rows each, cut where the rows split most evenly:
    (first row, rows, row groups) per range; none for a file to read on one thread."""
    total = sum(groups)
    in_flight = GROUPS_IN_FLIGHT // max(1, group_bytes)
    count = min(MAX_SEGMENTS, usable_cores(), total // SEGMENT_ROWS, len(groups), in_flight)
    if count < 2:
        return []
    ends = np.cumsum(groups)  # the row after each row group
    cuts = [0]
    for k in range(1, count):
        cut = int(np.argmin(np.abs(ends[:-1] - total * k / count))) + 1  # row groups before the k-th cut
        if cut > cuts[-1]:
            cuts.append(cut)
    cuts.append(len(groups))
    starts = [0, *(int(e) for e in ends)]
    return [(starts[a], starts[b] - starts[a], list(range(a, b))) for a, b in itertools.pairwise(cuts)]


def _parquet_batches(
    table: Table, wanted: list[str], groups: list[int] | None = None, start: int = 0
) -> Iterator[Batch]:
    import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

    try:
        # pre_buffer would read ahead whole row groups of every column: memory then grows with the file.
        parquet = pq.ParquetFile(table.path, pre_buffer=False, buffer_size=1 << 20)
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=groups, columns=wanted):
            yield Batch(start, {c: batch.column(c) for c in wanted})
            start += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise DataFormatError(
            f"{table.name} is not a readable Parquet file ({exc}, after row {start}): write it again"
        ) from None
