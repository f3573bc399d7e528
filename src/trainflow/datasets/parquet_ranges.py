"""A large Parquet table converted in ranges of row groups side by side, each straight into its rows of the arrays.

A Parquet file's metadata gives each row group's row count, so before a row is read it is known where each range's
training and held-out rows go in `x_train.npy` and `x_test.npy`: each range writes its own rows in place. The
training rows' statistics are summed in the same fixed blocks of rows as one pass sums them (a block a range holds
whole on its thread, a block across two ranges from the array once all are written) and added in block order, so
they are the same bits however the table is cut; the labels' codes are merged in row order.
"""

from __future__ import annotations

import numpy as np

from trainflow.datasets.checks import BlockSums, FeatureSums, Sums
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.row_files import NpyRows
from trainflow.datasets.side_by_side import Check, side_by_side
from trainflow.datasets.table_labels import LabelCodes
from trainflow.datasets.table_reader import Part, Table
from trainflow.datasets.table_rows import Read, read_rows


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
    train, test = arrays
    train_rows = len(held) - int(np.count_nonzero(held))

    def convert(k: int, check: Check) -> tuple[LabelCodes, Read, dict[int, Sums]]:
        part = parts[k]
        end = part.first + part.rows
        before = int(np.count_nonzero(held[: part.first]))  # held-out rows before the part's first
        at = {"train": part.first - before, "test": before}
        sums = BlockSums(at["train"], end - before - int(np.count_nonzero(held[part.first : end])), train_rows)

        def rows(start: int, block: np.ndarray) -> None:
            check()
            if start + len(block) > end:
                raise DataFormatError(
                    f"{table.name} holds more rows than its metadata says ({len(held)}): write it again"
                )
            mask = held[start : start + len(block)]
            kept, out = block[~mask], block[mask]
            train.write_at(at["train"], kept)
            test.write_at(at["test"], out)
            sums.add(kept)
            at["train"] += len(kept)
            at["test"] += len(out)

        own = LabelCodes()
        read = read_rows(table, part.batches, features, label, own, rows)
        if read.rows != part.rows:
            raise DataFormatError(
                f"{table.name} holds {read.rows} rows in row groups whose metadata says {part.rows}: write it again"
            )
        return own, read, sums.finish()

    done = side_by_side(len(parts), convert, earlier_go_on=True)
    for array, count in ((train, train_rows), (test, len(held) - train_rows)):
        if count:  # an array this table put no rows in is left as it is (the other table of a pair fills it)
            array.holds(count)
    merged = [codes.merged(own, read.codes) for own, read, _ in done]
    statistics = FeatureSums.of_parts(train.width, train_rows, [blocks for _, _, blocks in done], train.read_at)
    return Read(table, sum(read.rows for _, read, _ in done), np.concatenate(merged)), statistics
