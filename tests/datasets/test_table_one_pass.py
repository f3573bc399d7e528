"""A table's rows go straight to the cached arrays as they are read: a re-read of one table (a value only Python
reads as a number) starts that table's rows over and leaves the other's alone; statistics are those of the array."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainflow.datasets import DataFormatError, DatasetCache, load_dataset, table_reader
from trainflow.datasets.checks import normalization

ROWS = 3000
FEATURES = 4


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_reader, "BATCH_BYTES", 4096)
    monkeypatch.setattr(table_reader, "BATCH_ROWS", 100)


def rows(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Whole numbers, so "1_000"-style text below reads back as the same float32.
    return rng.integers(-5000, 5000, size=(count, FEATURES)).astype(np.float32), rng.integers(0, 3, count)


def write_csv(path: Path, x: np.ndarray, y: np.ndarray, underscored_row: int | None = None) -> None:
    """A CSV of the rows; at `underscored_row` the first value is written as Python's '1_000' style, which pyarrow
    does not parse as a number (so the table is read again as text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*(f"f{j}" for j in range(FEATURES)), "label"])
        for i, (row, label) in enumerate(zip(x, y, strict=True)):
            values = [str(int(v)) for v in row]
            if i == underscored_row:
                values[0] = f"{int(row[0]):_}"
            writer.writerow([*values, int(label)])


def test_a_test_table_read_again_as_text_keeps_the_training_rows(cache: DatasetCache, tmp_path: Path) -> None:
    x_train, y_train = rows(1, ROWS)
    x_test, y_test = rows(2, ROWS // 2)
    x_test[1400, 0] = 4321.0  # written as 4_321, in the test table's last batches
    write_csv(tmp_path / "src" / "train.csv", x_train, y_train)
    write_csv(tmp_path / "src" / "test.csv", x_test, y_test, underscored_row=1400)

    result = cache.ensure(str(tmp_path / "src"), "d")
    dataset = load_dataset(result.path)

    assert np.array_equal(np.asarray(dataset.train.images), x_train)
    assert np.array_equal(np.asarray(dataset.test.images), x_test)
    assert np.array_equal(np.asarray(dataset.train.labels), y_train)
    assert result.descriptor is not None
    assert result.descriptor.normalization == normalization(x_train, (FEATURES,))


def test_a_single_table_read_again_as_text_holds_each_row_once(cache: DatasetCache, tmp_path: Path) -> None:
    x, y = rows(3, ROWS)
    x[2900, 0] = -2468.0  # written as -2_468 near the end, after most rows were already written out
    write_csv(tmp_path / "src" / "t.csv", x, y, underscored_row=2900)

    result = cache.ensure(str(tmp_path / "src"), "d")
    dataset = load_dataset(result.path)

    order = np.random.default_rng(0).permutation(ROWS)
    held = np.zeros(ROWS, dtype=bool)
    held[order[: int(ROWS * 0.2)]] = True
    assert np.array_equal(np.asarray(dataset.train.images), x[~held])
    assert np.array_equal(np.asarray(dataset.test.images), x[held])
    assert result.descriptor is not None
    assert result.descriptor.normalization == normalization(x[~held], (FEATURES,))


def test_parquet_rows_beyond_a_statistics_block_give_the_statistics_of_the_array(
    cache: DatasetCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainflow.datasets import checks

    monkeypatch.setattr(checks, "_STATS_ROWS", 256)  # so the training rows span many blocks, batches across them
    x, y = rows(4, ROWS)
    (tmp_path / "src").mkdir()
    table = {f"f{j}": pa.array(x[:, j]) for j in range(FEATURES)} | {"label": pa.array(y)}
    pq.write_table(pa.table(table), tmp_path / "src" / "t.parquet", row_group_size=333)

    result = cache.ensure(str(tmp_path / "src"), "d")
    dataset = load_dataset(result.path)

    assert result.descriptor is not None
    train = np.asarray(dataset.train.images)
    assert len(train) == ROWS - int(ROWS * 0.2)
    assert result.descriptor.normalization == normalization(train, (FEATURES,))


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_a_float32_parquet_column_with_a_non_finite_value_deep_in_the_file_is_refused_by_row(
    cache: DatasetCache, tmp_path: Path, bad: float
) -> None:
    x, y = rows(5, ROWS)
    x[2500, 2] = bad
    (tmp_path / "src").mkdir()
    table = {f"f{j}": pa.array(x[:, j], type=pa.float32()) for j in range(FEATURES)} | {"label": pa.array(y)}
    pq.write_table(pa.table(table), tmp_path / "src" / "t.parquet", row_group_size=333)

    with pytest.raises(
        DataFormatError, match=r"column 'f2' of t.parquet is not numeric \(row index 2500: '(inf|nan)'\)"
    ):
        cache.ensure(str(tmp_path / "src"), "d")
    assert not (cache.path("d") / "descriptor.json").exists()
