"""A label a table cannot train on is refused naming the first row that holds it, where its user would look: a CSV's
line, a Parquet file's row index; in a single table's held-out rows or in a test table of its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainflow.datasets import DataFormatError, DatasetCache

ROWS = 3000


def held_out(rows: int) -> np.ndarray:
    """The rows a single table holds out: 20% by a permutation seeded 0 (as tests/datasets/test_streaming_tables)."""
    return np.sort(np.random.default_rng(0).permutation(rows)[: int(rows * 0.2)])


def write(src: Path, fmt: str, labels: list[str] | list[int], name: str = "t") -> None:
    src.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        (src / f"{name}.csv").write_text("a,label\n" + "".join(f"{i}.5,{v}\n" for i, v in enumerate(labels)))
    else:
        pq.write_table(pa.table({"a": np.arange(len(labels)) + 0.5, "label": labels}), src / f"{name}.parquet")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_held_out_row_whose_class_no_training_row_has_is_named(cache: DatasetCache, tmp_path: Path, fmt: str) -> None:
    labels = [["ant", "bee", "cat"][i % 3] for i in range(ROWS)]
    row = int(held_out(ROWS)[-3])  # deep in the file
    labels[row] = "zebra"
    write(tmp_path / "src", fmt, labels)

    at = f"line {row + 2}" if fmt == "csv" else f"row index {row}"
    with pytest.raises(DataFormatError, match=rf"label 'zebra' at {at} of t\.{fmt} \(held-out part\) is not a class"):
        cache.ensure(str(tmp_path / "src"), "d")
    assert cache.names() == []


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_held_out_integer_label_past_the_training_labels_is_named(
    cache: DatasetCache, tmp_path: Path, fmt: str
) -> None:
    labels = [i % 4 for i in range(ROWS)]
    row = int(held_out(ROWS)[-5])
    labels[row] = 9
    write(tmp_path / "src", fmt, labels)

    at = f"line {row + 2}" if fmt == "csv" else f"row index {row}"
    with pytest.raises(DataFormatError, match=rf"label 9 at {at} of t\.{fmt} \(held-out part\) is out of range: the "):
        cache.ensure(str(tmp_path / "src"), "d")
    assert cache.names() == []


def test_a_test_tables_row_is_named_by_its_line_in_that_table_after_a_blank_line(
    cache: DatasetCache, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    write(src, "csv", [["ant", "bee"][i % 2] for i in range(ROWS)], "train")
    write(src, "csv", [["ant", "bee"][i % 2] for i in range(500)], "test")
    lines = (src / "test.csv").read_text().splitlines(keepends=True)
    lines[401] = "401.5,eel\n"  # data row 400
    lines[10:10] = ["\n"]
    (src / "test.csv").write_text("".join(lines))

    with pytest.raises(DataFormatError, match=r"label 'eel' at line 403 of test\.csv is not a class of train\.csv"):
        cache.ensure(str(src), "d")
    assert cache.names() == []


@pytest.mark.parametrize(("bad", "fmt"), [(-1, "csv"), (70000, "parquet")])
def test_a_training_label_out_of_range_is_named(cache: DatasetCache, tmp_path: Path, bad: int, fmt: str) -> None:
    labels = [i % 4 for i in range(ROWS)]
    row = int(np.setdiff1d(np.arange(ROWS), held_out(ROWS))[-7])  # a training row deep in the file
    labels[row] = bad
    write(tmp_path / "src", fmt, labels)

    at = f"line {row + 2}" if fmt == "csv" else f"row index {row}"
    with pytest.raises(DataFormatError, match=rf"label {bad} at {at} of t\.{fmt} \(training part\) is out of range"):
        cache.ensure(str(tmp_path / "src"), "d")
    assert cache.names() == []
