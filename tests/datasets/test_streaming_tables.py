"""Tables larger than one batch stream into the cache and come out as reading them whole would make them."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainflow.datasets import DataFormatError, DatasetCache, load_dataset, table_reader
from trainflow.datasets.checks import normalization

ROWS = 5000  # about 40 batches at the batch sizes below
FEATURES = 6


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_reader, "BATCH_BYTES", 4096)
    monkeypatch.setattr(table_reader, "BATCH_ROWS", 128)


def table(labels: str) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(ROWS, FEATURES)) * [1, 10, 100, 0.01, 1e6, 3]).astype(np.float32)
    names = ["ant", "bee", "cat", "dog"]
    y = [str(v) if labels == "int" else names[v] for v in rng.integers(0, 4, ROWS)]
    return x, y


def write_csv(path: Path, x: np.ndarray, y: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*(f"f{j}" for j in range(FEATURES)), "label"])
        writer.writerows([*(repr(float(v)) for v in row), label] for row, label in zip(x, y, strict=True))
    return path.parent


def write_parquet(path: Path, x: np.ndarray, y: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {f"f{j}": pa.array(x[:, j]) for j in range(FEATURES)} | {"label": pa.array(y)}
    pq.write_table(pa.table(columns), path, row_group_size=700)
    return path.parent


def expected(x: np.ndarray, y: list[str]) -> dict[str, np.ndarray]:
    """What reading the table whole gives: 20% of the rows held out by a permutation seeded 0, in file order."""
    order = np.random.default_rng(0).permutation(len(y))
    test = np.sort(order[: max(1, int(len(y) * 0.2))])
    train = np.setdiff1d(np.arange(len(y)), test)
    classes = sorted(set(np.asarray(y)[train]))
    labels = np.array([int(v) if v.isdigit() else classes.index(v) for v in y], dtype=np.int64)
    return {"x_train": x[train], "y_train": labels[train], "x_test": x[test], "y_test": labels[test]}


@pytest.mark.parametrize(("fmt", "labels"), [("csv", "int"), ("parquet", "names")])
def test_streamed_table_gives_the_arrays_split_and_statistics_of_reading_it_whole(
    cache: DatasetCache, tmp_path: Path, fmt: str, labels: str
) -> None:
    x, y = table(labels)
    write = write_csv if fmt == "csv" else write_parquet
    result = cache.ensure(str(write(tmp_path / "src" / f"t.{fmt}", x, y)), "d")

    d, dataset = result.descriptor, load_dataset(result.path)
    want = expected(x, y)
    assert d is not None and (d.format, d.input_shape, d.dtype) == (fmt, (FEATURES,), "float32")
    assert (d.train_count, d.test_count) == (4000, 1000)
    assert d.class_names == (("0", "1", "2", "3") if labels == "int" else ("ant", "bee", "cat", "dog"))
    for part, split in (("train", dataset.train), ("test", dataset.test)):
        assert np.array_equal(np.asarray(split.images), want[f"x_{part}"])
        assert np.array_equal(np.asarray(split.labels), want[f"y_{part}"])
    assert d.normalization == normalization(want["x_train"], (FEATURES,))


def test_csv_and_parquet_of_the_same_table_describe_it_alike(cache: DatasetCache, tmp_path: Path) -> None:
    x, y = table("names")
    from_csv = cache.ensure(str(write_csv(tmp_path / "a" / "t.csv", x, y)), "a").descriptor
    from_parquet = cache.ensure(str(write_parquet(tmp_path / "b" / "t.parquet", x, y)), "b").descriptor
    assert from_csv is not None and from_parquet is not None
    for field in ("input_shape", "class_names", "train_count", "test_count", "normalization"):
        assert getattr(from_csv, field) == getattr(from_parquet, field)


def test_train_and_test_tables_are_kept_apart_in_file_order(cache: DatasetCache, tmp_path: Path) -> None:
    x, y = table("names")
    write_csv(tmp_path / "src" / "train.csv", x[:4000], y[:4000])
    write_csv(tmp_path / "src" / "test.csv", x[4000:], y[4000:])
    dataset = load_dataset(cache.ensure(str(tmp_path / "src"), "d").path)
    assert np.array_equal(np.asarray(dataset.train.images), x[:4000])
    assert np.array_equal(np.asarray(dataset.test.images), x[4000:])


def corrupt(src: Path, line: int, text: str) -> None:
    x, y = table("int")
    path = src / "t.csv"
    write_csv(path, x, y)
    lines = path.read_text().splitlines(keepends=True)
    lines[line - 1] = text
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("1.0,2.0,3.0\n", r"t\.csv line 4321 has 3 values for 7 columns: fix that row"),
        ("1,2,3,4,five,6,0\n", r"column 'f4' of t\.csv is not numeric \(line 4321: 'five'\)"),
        ("1,2,3,4,5,6,\n", r"line 4321 of t\.csv has no 'label'"),
        ("1,2,3,4,1e39,6,0\n", r"column 'f4' of t\.csv holds 1e39 \(line 4321\), beyond float32"),
    ],
)
def test_a_corrupt_row_deep_in_a_table_is_named_and_nothing_is_kept(
    cache: DatasetCache, tmp_path: Path, bad_line: str, message: str
) -> None:
    corrupt(tmp_path / "src", 4321, bad_line)
    with pytest.raises(DataFormatError, match=message) as refused:
        cache.ensure(str(tmp_path / "src"), "d")
    assert "\n" not in str(refused.value)
    assert not cache.path("d").exists() and cache.names() == []
