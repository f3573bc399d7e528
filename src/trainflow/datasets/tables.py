"""CSV and Parquet datasets: numeric feature columns and one label column, as float32 [N, F] and int64 labels."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from trainflow.datasets.arrays import Built
from trainflow.datasets.checks import FEATURE_LIMIT
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.formats import FormatOptions
from trainflow.datasets.layout import cached_path

LABEL_COLUMNS = ("label", "target", "class", "y")  # tried in order when --label-column is not given
TEST_FRACTION = 0.2  # of a single table, held out (seeded, so every sync splits alike)
Columns = dict[str, list[str]]


def build_table(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    suffix = ".parquet" if options.format == "parquet" or not any(n.lower().endswith(".csv") for n in names) else ".csv"
    files = sorted(n for n in names if n.lower().endswith(suffix))
    train = [n for n in files if "train" in PurePosixPath(n).name.lower()]
    test = [n for n in files if "test" in PurePosixPath(n).name.lower()]
    if len(files) == 1:
        tables = {"all": files[0]}
    elif len(train) == 1 and len(test) == 1:
        tables = {"train": train[0], "test": test[0]}
    else:
        raise DataFormatError(
            f"cannot tell the training table from the test table among {', '.join(files)}: "
            f"sync one {suffix} file, or two named like train{suffix} and test{suffix}"
        )
    read = {name: _read(directory, name) for name in tables.values()}
    label = _label_column(options.label_column, read)
    features = [c for c in next(iter(read.values())) if c != label]
    for name, columns in read.items():
        if [c for c in columns if c != label] != features:
            raise DataFormatError(
                f"{name} has columns {', '.join(columns)}, not those of {next(iter(read))}: "
                "give both tables the same columns"
            )
    x = {split: _features(name, read[name], features) for split, name in tables.items()}
    raw_labels = {split: read[name][label] for split, name in tables.items()}
    for split, name in tables.items():
        if "" in raw_labels[split]:
            raise DataFormatError(
                f"line {raw_labels[split].index('') + 2} of {name} has no '{label}': fill in the label of every row"
            )
    if "all" in tables:
        x, raw_labels = _split(x["all"], raw_labels["all"])
        tables = {"train": f"{tables['all']} (training part)", "test": f"{tables['all']} (held-out part)"}
    y, classes = _labels(raw_labels, tables)
    built: dict[str, str | Path] = {}
    for split in ("train", "test"):
        for role, array in ((f"x_{split}", x[split]), (f"y_{split}", y[split])):
            np.save(work / f"{role}.npy", array)
            built[role] = work / f"{role}.npy"
    return Built(built, classes, shown_as={f"{r}_{s}": tables[s] for r in ("x", "y") for s in ("train", "test")})


def _read(directory: Path, name: str) -> Columns:
    path = cached_path(directory, name)
    if name.lower().endswith(".parquet"):
        return _read_parquet(path, name)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataFormatError(
            f"{name} is not a readable CSV file ({exc}): save it as UTF-8 CSV with a header row"
        ) from None
    if len(rows) < 2 or not rows[0]:
        raise DataFormatError(f"{name} has no header row and data rows: save it as CSV with a header row")
    header = [c.strip() for c in rows[0]]
    if len(set(header)) != len(header):
        raise DataFormatError(f"{name} names a column twice ({', '.join(header)}): give every column its own name")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataFormatError(f"{name} line {line} has {len(row)} values for {len(header)} columns: fix that row")
    return {c: [row[i].strip() for row in rows[1:]] for i, c in enumerate(header)}


def _read_parquet(path: Path, name: str) -> Columns:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found, import-untyped, unused-ignore]  # optional
    except ImportError:
        raise DataFormatError(
            f"reading {name} needs pyarrow, which is not installed: pip install pyarrow, or save the table as CSV"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise DataFormatError(f"{name} is not a readable Parquet file ({exc}): write it again") from None
    return {c: ["" if v is None else str(v) for v in table.column(c).to_pylist()] for c in table.column_names}


def _label_column(declared: str | None, read: dict[str, Columns]) -> str:
    for name, columns in read.items():
        if declared is not None and declared not in columns:
            raise DataFormatError(
                f"{name} has no column '{declared}' (its columns: {', '.join(columns)}): "
                "name the label column with --label-column"
            )
    if declared is not None:
        return declared
    columns = next(iter(read.values()))
    found = next((c for c in LABEL_COLUMNS if c in columns), None)
    if found is None:
        raise DataFormatError(
            f"{next(iter(read))} has no column named {', '.join(LABEL_COLUMNS)} (its columns: "
            f"{', '.join(columns)}): name the label column with --label-column"
        )
    return found


def _features(name: str, columns: Columns, features: list[str]) -> np.ndarray:
    if not features:
        raise DataFormatError(f"{name} has no feature columns besides the label: add the features")
    out = np.empty((len(columns[features[0]]), len(features)), dtype=np.float32)
    for j, column in enumerate(features):
        for i, value in enumerate(columns[column]):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise DataFormatError(
                    f"column '{column}' of {name} is not numeric (row {i + 2}: {value[:40]!r}): "
                    "drop it or encode it as numbers"
                )
            if abs(number) > FEATURE_LIMIT:
                raise DataFormatError(
                    f"column '{column}' of {name} holds {value[:40]} (row {i + 2}), beyond float32's "
                    f"±{FEATURE_LIMIT:.1e} that the models compute in: scale the column down"
                )
            out[i, j] = number
    return out


def _split(x: np.ndarray, labels: list[str]) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    order = np.random.default_rng(0).permutation(len(labels))
    n_test = max(1, int(len(labels) * TEST_FRACTION))
    parts = {"test": order[:n_test], "train": order[n_test:]}
    return {s: x[np.sort(i)] for s, i in parts.items()}, {s: [labels[k] for k in np.sort(i)] for s, i in parts.items()}


def _labels(raw: dict[str, list[str]], tables: dict[str, str]) -> tuple[dict[str, np.ndarray], tuple[str, ...] | None]:
    """Integer labels are class indices; any other label is a class name (classes sorted)."""
    try:
        ints = {s: np.array([int(v) for v in values], dtype=np.int64) for s, values in raw.items()}
        return ints, None
    except ValueError:
        pass
    classes = tuple(sorted(set(raw["train"])))
    index = {c: i for i, c in enumerate(classes)}
    for value in raw["test"]:
        if value not in index:
            raise DataFormatError(
                f"label {value[:40]!r} in {tables['test']} is not a class of {tables['train']} "
                f"({', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''}): fix the label"
            )
    return {s: np.array([index[v] for v in values], dtype=np.int64) for s, values in raw.items()}, classes
