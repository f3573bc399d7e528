"""One table's batches converted into float32 feature rows and label codes, each value checked on the way."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

from trainflow.datasets.checks import FEATURE_LIMIT
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.table_labels import LabelCodes
from trainflow.datasets.table_reader import Batch, NotNumbers, Table, nulls_of, values_of

Rows = Callable[[int, np.ndarray], None]  # where a table's feature rows go: (first row's index, float32 rows)


class MiscountedRows(DataFormatError):
    """A table holds more or fewer rows than were counted before reading it (a Parquet file's metadata, a CSV's
    lines)."""


@dataclass(frozen=True)
class Read:
    """A table (or a range of it) read through: its row count and its labels as codes (its features went where
    the pass sent them)."""

    table: Table
    rows: int
    codes: np.ndarray


def read_rows(
    table: Table, batches: Iterator[Batch], features: list[str], label: str, codes: LabelCodes, rows: Rows
) -> Read:
    """Each batch's features as a float32 block of rows given to `rows`, its labels coded by `codes`.

    DataFormatError naming the row of the first value that is not a number within float32's range.
    """
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
    return Read(table, count, np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32))


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
    where = batch.where(table, i)
    if math.isfinite(numbers[i]):
        raise DataFormatError(
            f"column '{column}' of {table.name} holds {value[:40]} ({where}), beyond float32's "
            f"±{FEATURE_LIMIT:.1e} that the models compute in: scale the column down"
        )
    raise DataFormatError(
        f"column '{column}' of {table.name} is not numeric ({where}: {value[:40]!r}): drop it or encode it as numbers"
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
