"""CSV and Parquet datasets: numeric feature columns and one label column, as float32 [N, F] and int64 labels.

Tables are read a batch of rows at a time (`table_reader`): features go to a raw file on the cache's disk
and labels become small integer codes, so memory stays flat however many rows there are; a second pass
splits the raw rows into the cached arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]

from trainflow.datasets.arrays import Built
from trainflow.datasets.checks import FEATURE_LIMIT
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.formats import FormatOptions
from trainflow.datasets.layout import cached_path
from trainflow.datasets.row_files import CHUNK_BYTES, raw_rows, write_npy
from trainflow.datasets.table_labels import LabelCodes, labels_of
from trainflow.datasets.table_reader import Batch, NotNumbers, Table, open_table

LABEL_COLUMNS = ("label", "target", "class", "y")  # tried in order when --label-column is not given
TEST_FRACTION = 0.2  # of a single table, held out (seeded, so every sync splits alike)


@dataclass(frozen=True)
class _Read:
    """A table converted: its features as raw float32 rows in `path`, its labels as codes."""

    table: Table
    path: Path
    rows: int
    codes: np.ndarray


def build_table(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    tables = _tables(names, options)
    opened = {name: open_table(cached_path(directory, name), name) for name in tables.values()}
    label = _label_column(options.label_column, {n: t.columns for n, t in opened.items()})
    features = _features(opened, label)
    codes = LabelCodes()
    read = {split: _read(opened[name], features, label, codes, work) for split, name in tables.items()}
    for part in read.values():
        empty = codes.first(part.codes, "")
        if empty is not None:
            raise DataFormatError(
                f"line {empty + 2} of {part.table.name} has no '{label}': fill in the label of every row"
            )
    if "all" in read:
        masks = {"test": _held_out(read["all"].rows)}
        masks["train"] = ~masks["test"]
        read = {"train": read["all"], "test": read["all"]}
        shown = {"train": f"{tables['all']} (training part)", "test": f"{tables['all']} (held-out part)"}
    else:
        masks = {s: np.ones(r.rows, dtype=bool) for s, r in read.items()}
        shown = dict(tables)
    raw = {s: read[s].codes[masks[s]] for s in ("train", "test")}
    y, classes = labels_of(codes, raw, shown)
    built: dict[str, str | Path] = {}
    for split in ("train", "test"):
        built[f"x_{split}"] = _write_features(read[split], len(features), masks[split], work / f"x_{split}.npy")
        built[f"y_{split}"] = work / f"y_{split}.npy"
        np.save(built[f"y_{split}"], y[split])
    for part in read.values():
        part.path.unlink(missing_ok=True)
    return Built(built, classes, shown_as={f"{r}_{s}": shown[s] for r in ("x", "y") for s in ("train", "test")})


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


def _read(table: Table, features: list[str], label: str, codes: LabelCodes, work: Path) -> _Read:
    try:
        return _read_as(table, features, label, codes, work, numbers=features)
    except NotNumbers:  # rare: text pyarrow does not parse (" 1.5", "1_000") or a bad value to quote as written
        return _read_as(table, features, label, codes, work, numbers=[])


def _read_as(table: Table, features: list[str], label: str, codes: LabelCodes, work: Path, numbers: list[str]) -> _Read:
    path = work / f".{PurePosixPath(table.name).name}.rows"
    parts: list[np.ndarray] = []
    rows = 0
    with open(path, "wb") as out:
        for batch in table.batches([*features, label], numbers):
            block = np.empty((batch.rows, len(features)), dtype=np.float32)
            for j, column in enumerate(features):
                block[:, j] = _numbers(table, batch, column)
            block.tofile(out)
            parts.append(codes.encode(batch.columns[label], table.text))
            rows += batch.rows
    return _Read(table, path, rows, np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32))


def _numbers(table: Table, batch: Batch, column: str) -> np.ndarray:
    """One batch of a feature column as float64; DataFormatError naming the first row that is not a usable number."""
    values = batch.columns[column]
    numbers = _cast(values)
    if numbers is None:  # text pyarrow does not read as a number (" 1.5", "1_000"): each value as Python reads it
        numbers = np.array([_number(v) for v in values.to_pylist()], dtype=np.float64)
    within = np.abs(numbers) <= FEATURE_LIMIT  # False for NaN as well
    if not within.all():
        if batch.parsed:
            raise NotNumbers(column)  # the message quotes the value as written: read it as text
        i = int(np.argmin(within))
        value = table.text(values[i].as_py())
        row = batch.start + i + 2
        if math.isfinite(numbers[i]):
            raise DataFormatError(
                f"column '{column}' of {table.name} holds {value[:40]} (row {row}), beyond float32's "
                f"±{FEATURE_LIMIT:.1e} that the models compute in: scale the column down"
            )
        raise DataFormatError(
            f"column '{column}' of {table.name} is not numeric (row {row}: {value[:40]!r}): "
            "drop it or encode it as numbers"
        )
    return numbers


def _cast(values: pa.Array) -> np.ndarray | None:
    kind = values.type
    if not (pa.types.is_string(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return None  # booleans, decimals, dates: as their text reads
    try:
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


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


def _write_features(read: _Read, width: int, mask: np.ndarray, dest: Path) -> Path:
    step = max(1, CHUNK_BYTES // (4 * width))

    def blocks() -> Iterator[np.ndarray]:
        for start, block in zip(range(0, read.rows, step), raw_rows(read.path, np.dtype(np.float32), width, step)):
            yield block[mask[start : start + len(block)]]

    return write_npy(dest, np.dtype(np.float32), (int(mask.sum()), width), blocks())
