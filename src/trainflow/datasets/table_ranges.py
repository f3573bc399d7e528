"""A large table converted in ranges side by side, each straight into its rows of the arrays.

The rows of each range are known before a row is read (a Parquet file's row groups from its metadata, a CSV's byte
ranges counted by their lines), so it is known where each range's training and held-out rows go in `x_train.npy`
and `x_test.npy`: each range writes its own rows in place. The training rows' statistics are summed in the same
fixed blocks of rows as one pass sums them (a block a range holds whole on its thread, a block across two ranges
from the array once all are written) and added in block order, so they are the same bits however the table is cut;
the labels' codes are merged in row order.
"""

from __future__ import annotations

import numpy as np

from trainflow.datasets.checks import BlockSums, FeatureSums, Sums
from trainflow.datasets.row_files import NpyRows
from trainflow.datasets.side_by_side import Check, side_by_side
from trainflow.datasets.table_labels import LabelCodes
from trainflow.datasets.table_reader import Part, Table
from trainflow.datasets.table_rows import MiscountedRows, Read, read_rows


def read_parts(
    table: Table,
    parts: list[Part],
    features: list[str],
    label: str,
    codes: LabelCodes,
    held: np.ndarray,
    arrays: tuple[NpyRows, NpyRows],
) -> tuple[Read, FeatureSums]:
    """Each part's rows into the training array (`arrays[0]`) or, where `held` (by row) is True, the test array,
    on a thread each; the whole table's read and its training rows' statistics.

    A bad value stops the parts after its own; the parts before it go on, so the row named is the first bad one.
    """

    def convert(k: int, check: Check) -> tuple[LabelCodes, Read, dict[int, Sums]]:
        part = parts[k]
        place = _Placed(part.first, part.first + part.rows, held, arrays, table.name)

        def rows(start: int, block: np.ndarray) -> None:
            check()
            place.rows(start, block)

        own = LabelCodes()
        read = read_rows(table, part.batches, features, label, own, rows)
        if read.rows != part.rows:
            raise MiscountedRows(
                f"{table.name} holds {read.rows} rows in row groups whose metadata says {part.rows}: write it again"
            )
        return own, read, place.sums.finish()

    done = side_by_side(len(parts), convert, earlier_go_on=True)
    statistics = _filled(held, arrays, [blocks for _, _, blocks in done])
    merged = [codes.merged(own, read.codes) for own, read, _ in done]
    return Read(table, sum(read.rows for _, read, _ in done), np.concatenate(merged)), statistics


class _Placed:
    """Rows `first` to `end - 1` of a table written in place: to the training array, or to the test array where
    `held` (by row) is True; their whole statistics blocks summed on the way."""

    def __init__(self, first: int, end: int, held: np.ndarray, arrays: tuple[NpyRows, NpyRows], name: str) -> None:
        self.end, self.held, self.arrays, self.name = end, held, arrays, name
        before = int(np.count_nonzero(held[:first]))  # held-out rows before the first
        self.at = [first - before, before]  # where the next training and test rows go
        kept = end - first - int(np.count_nonzero(held[first:end]))
        self.sums = BlockSums(self.at[0], self.at[0] + kept, len(held) - int(np.count_nonzero(held)))

    def rows(self, start: int, block: np.ndarray) -> None:
        if start + len(block) > self.end:
            raise MiscountedRows(
                f"{self.name} holds more rows than its metadata says ({len(self.held)}): write it again"
            )
        mask = self.held[start : start + len(block)]
        kept, out = block[~mask], block[mask]
        self.arrays[0].write_at(self.at[0], kept)
        self.arrays[1].write_at(self.at[1], out)
        self.sums.add(kept)
        self.at = [self.at[0] + len(kept), self.at[1] + len(out)]


def _filled(held: np.ndarray, arrays: tuple[NpyRows, NpyRows], blocks: list[dict[int, Sums]]) -> FeatureSums:
    """The arrays' row counts set once their parts are written; the training rows' statistics from the parts' blocks."""
    train, test = arrays
    train_rows = len(held) - int(np.count_nonzero(held))
    for array, count in ((train, train_rows), (test, len(held) - train_rows)):
        if count:  # an array this table put no rows in is left as it is (the other table of a pair fills it)
            array.holds(count)
    return FeatureSums.of_parts(train.width, train_rows, blocks, train.read_at)
