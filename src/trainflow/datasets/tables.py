"""CSV and Parquet datasets: numeric feature columns and one label column, as float32 [N, F] and int64 labels.

Tables are read a batch of rows at a time (`table_reader`) and labels become small integer codes, so memory
stays flat however many rows there are. The rows are counted before they are read (a Parquet file's metadata,
a CSV's lines), so each goes straight to the training or the test array, the training rows' statistics summed
on the way, a large table's ranges side by side, one a core. A CSV whose lines are not its rows is read again
on one thread into a raw file on the cache's disk, then split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path, PurePosixPath

import numpy as np

from trainflow.datasets.arrays import Built
from trainflow.datasets.checks import FeatureSums
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.formats import FormatOptions
from trainflow.datasets.layout import cached_path
from trainflow.datasets.row_files import CHUNK_BYTES, NpyRows, raw_rows
from trainflow.datasets.table_labels import LabelCodes, labels_of
from trainflow.datasets.table_ranges import read_parts
from trainflow.datasets.table_reader import NotNumbers, Part, SpansLines, Table, open_table
from trainflow.datasets.table_rows import MiscountedRows, Read, Rows, read_rows

LABEL_COLUMNS = ("label", "target", "class", "y")  # tried in order when --label-column is not given
TEST_FRACTION = 0.2  # of a single table, held out (seeded, so every sync splits alike)


F32 = np.dtype(np.float32)


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
                raise MiscountedRows(f"{name} holds more rows than its metadata says ({len(held)}): write it again")
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
                "train": _read_table(opened[tables["train"]], features, label, codes, out, held=False),
                "test": _read_table(opened[tables["test"]], features, label, codes, out, held=True),
            }
        x_files = {"x_train": out.train.close(), "x_test": out.test.close()}
    for part in read.values():
        empty = codes.first(part.codes, "")
        if empty is not None:
            raise DataFormatError(
                f"{part.table.where(empty)} of {part.table.name} has no '{label}': fill in the label of every row"
            )
    if "all" in read:
        masks = {"test": held, "train": ~held}
        read = {"train": read["all"], "test": read["all"]}
        shown = {"train": f"{tables['all']} (training part)", "test": f"{tables['all']} (held-out part)"}
    else:
        masks = {s: np.ones(r.rows, dtype=bool) for s, r in read.items()}
        shown = dict(tables)
    raw = {s: read[s].codes[masks[s]] for s in ("train", "test")}

    def where(split: str, row: int) -> str:
        """Where row `row` of a split is in its table."""
        return read[split].table.where(int(np.flatnonzero(masks[split])[row]))

    y, classes = labels_of(codes, raw, shown, where)
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
) -> tuple[Read, np.ndarray]:
    """A single table read into both arrays, and its held-out rows: each row straight to its array, its ranges side
    by side, where its rows are counted before it is read (a Parquet file's metadata; a CSV's lines)."""
    parts = table.parts([*features, label], features, (label,))
    try:
        return _placed(table, parts, features, label, codes, out)
    except (DataFormatError, NotNumbers) as exc:
        if not table.csv or (len(parts) == 1 and not isinstance(exc, MiscountedRows)):
            raise
        out.restart()  # rows written where the counts put them
    # A CSV whose lines are not its rows (a blank line, a line break in a quoted value), or a range of it that met
    # something to refuse or to read as text: read again on one thread from its start, which names a bad row by its
    # line in the file, into a raw file (its row count, and so its held-out rows, known only at its end).
    raw = work / f".{PurePosixPath(table.name).name}.rows"
    with open(raw, "wb") as f:

        def again() -> None:
            f.seek(0)
            f.truncate()

        read = _read(table, features, label, codes, lambda _, block: block.tofile(f), again)
    held = _held_out(read.rows)
    split = out.split(held, table.name)
    start = 0
    for block in raw_rows(raw, F32, len(features), max(1, CHUNK_BYTES // (4 * len(features)))):
        split(start, block)
        start += len(block)
    raw.unlink()
    return read, held


def _placed(
    table: Table, parts: list[Part], features: list[str], label: str, codes: LabelCodes, out: _Features
) -> tuple[Read, np.ndarray]:
    """The parts' rows written in place (MiscountedRows where the table holds other rows than they count)."""
    rows = sum(part.rows for part in parts)
    held = _held_out(rows)
    if len(parts) > 1:
        read, out.sums = read_parts(table, parts, features, label, codes, held, (out.train, out.test))
    else:
        read = _read(table, features, label, codes, out.split(held, table.name), out.restart)
    if read.rows != rows:
        raise MiscountedRows(f"{table.name} holds {read.rows} rows where its metadata says {rows}: write it again")
    return read, held


def _read_table(table: Table, features: list[str], label: str, codes: LabelCodes, out: _Features, held: bool) -> Read:
    """The training table (`held` False) or the test table read whole into its array; a large Parquet file's row
    groups converted in ranges side by side."""
    parts = [] if table.csv else table.parts([*features, label], features)
    if len(parts) > 1:
        read, sums = read_parts(
            table, parts, features, label, codes, np.full(table.rows or 0, held), (out.train, out.test)
        )
        out.sums = out.sums if held else sums
        return read
    if held:
        return _read(table, features, label, codes, out.to_test, out.test.restart)
    return _read(table, features, label, codes, out.to_train, out.restart)


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
    table: Table,
    features: list[str],
    label: str,
    codes: LabelCodes,
    rows: Rows,
    restart: Callable[[], None],
    newlines: bool = False,
) -> Read:
    wanted = [*features, label]
    try:
        try:
            return read_rows(table, table.batches(wanted, features, (label,), newlines), features, label, codes, rows)
        except NotNumbers:  # rare: text pyarrow does not parse (" 1.5", "1_000") or a bad value to quote as written
            restart()
            return read_rows(table, table.batches(wanted, [], (label,), newlines), features, label, codes, rows)
    except SpansLines:  # rarer: a label that holds a line break where a block was cut
        restart()
        return _read(table, features, label, codes, rows, restart, newlines=True)


def _held_out(rows: int) -> np.ndarray:
    """The rows of a single table held out for testing: the same for the same number of rows, every sync."""
    order = np.random.default_rng(0).permutation(rows)
    held = np.zeros(rows, dtype=bool)
    held[order[: max(1, int(rows * TEST_FRACTION))]] = True
    return held
