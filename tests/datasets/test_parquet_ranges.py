"""A large Parquet file's row groups are converted in ranges side by side: the same bytes in the arrays, split,
labels and statistics as one range, and a bad value in a later range named by its row with nothing kept."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainflow.datasets import DataFormatError, DatasetCache, checks, table_reader
from trainflow.datasets.checks import normalization

ROWS = 6000
FEATURES = 5
GROUP_ROWS = 450  # 14 row groups, the last one short
RANGES = 3


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of ~2,000 rows on three threads, batches of 128 rows, statistics summed in blocks of 300 rows (so
    blocks straddle the ranges' edges and batches straddle blocks)."""
    monkeypatch.setattr(table_reader, "BATCH_ROWS", 128)
    monkeypatch.setattr(table_reader, "SEGMENT_ROWS", 1000)
    monkeypatch.setattr(table_reader, "usable_cores", lambda: RANGES)
    monkeypatch.setattr(checks, "_STATS_ROWS", 300)


def write_parquet(folder: Path, x: np.ndarray, labels: list[str | None], name: str = "t.parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    columns = {f"f{j}": pa.array(x[:, j]) for j in range(FEATURES)} | {"label": pa.array(labels, type=pa.string())}
    pq.write_table(pa.table(columns), folder / name, row_group_size=GROUP_ROWS)
    return folder / name


def table(seed: int = 11, rows: int = ROWS) -> tuple[np.ndarray, list[str | None]]:
    """Float64 features of very different scales; the last rows hold a class no earlier row has ('zebra')."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)) * [1, 10, 1e3, 0.01, 5]
    labels: list[str | None] = [["cat", "ant", "bee"][v] for v in rng.integers(0, 3, rows)]
    labels[-50:] = ["zebra"] * 50
    return x, labels


def synced_bytes(cache: DatasetCache, folder: Path, name: str) -> dict[str, bytes]:
    """The synced dataset's arrays (file bytes, headers included) and its descriptor."""
    result = cache.ensure(str(folder), name)
    files = {p.name: p.read_bytes() for p in result.path.rglob("*.npy")}
    assert sorted(files) == ["x_test.npy", "x_train.npy", "y_test.npy", "y_train.npy"]
    return files | {"descriptor.json": (result.path / "descriptor.json").read_bytes()}


def one_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_reader, "SEGMENT_ROWS", 1 << 30)


def test_the_row_groups_are_cut_into_contiguous_ranges_of_about_equal_rows(tmp_path: Path) -> None:
    path = write_parquet(tmp_path, *table())
    opened = table_reader.open_table(path, "t.parquet")
    parts = opened.parts(opened.columns, [])

    assert [(p.first, p.rows) for p in parts] == [(0, 1800), (1800, 2250), (4050, 1950)]
    assert [sum(b.rows for b in p.batches) for p in parts] == [1800, 2250, 1950]
    assert all(a.first + a.rows == b.first for a, b in itertools.pairwise(parts))
    assert table_reader._parquet_ranges((100,) * 19, 1000) == []  # under twice SEGMENT_ROWS rows: one thread


def test_large_row_groups_are_read_in_fewer_ranges_so_memory_stays_bounded() -> None:
    groups, limit = (1000,) * 8, table_reader.GROUPS_IN_FLIGHT
    assert len(table_reader._parquet_ranges(groups, limit // 4)) == RANGES
    assert len(table_reader._parquet_ranges(groups, limit // 2)) == 2
    assert table_reader._parquet_ranges(groups, limit) == []


def test_a_parquet_table_converted_in_ranges_gives_the_bytes_of_one_range(
    cache: DatasetCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, labels = table()
    write_parquet(tmp_path / "src", x, labels)

    ranged = synced_bytes(cache, tmp_path / "src", "ranged")
    one_range(monkeypatch)
    whole = synced_bytes(cache, tmp_path / "src", "whole")

    assert ranged == whole
    order = np.random.default_rng(0).permutation(ROWS)
    held = np.zeros(ROWS, dtype=bool)
    held[order[: int(ROWS * 0.2)]] = True
    x_train = np.load(next((cache.path("ranged")).rglob("x_train.npy")))
    assert np.array_equal(x_train, x[~held].astype(np.float32))
    descriptor = cache.ensure(str(tmp_path / "src"), "ranged").descriptor
    assert descriptor is not None and descriptor.class_names == ("ant", "bee", "cat", "zebra")
    assert descriptor.normalization == normalization(x_train, (FEATURES,))


def test_a_training_and_a_test_table_converted_in_ranges_give_the_bytes_of_one_range(
    cache: DatasetCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_parquet(tmp_path / "src", *table(1), name="train.parquet")
    write_parquet(tmp_path / "src", *table(2, rows=2500), name="test.parquet")

    ranged = synced_bytes(cache, tmp_path / "src", "ranged")
    one_range(monkeypatch)

    assert ranged == synced_bytes(cache, tmp_path / "src", "whole")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.nan, r"column 'f3' of t\.parquet is not numeric \(row index 5432: 'nan'\)"),
        (np.inf, r"column 'f3' of t\.parquet is not numeric \(row index 5432: 'inf'\)"),
        (1e39, r"column 'f3' of t\.parquet holds 1e\+39 \(row index 5432\), beyond float32"),
        (None, r"row index 5432 of t\.parquet has no 'label': fill in the label of every row"),
    ],
)
def test_a_bad_value_in_the_last_range_is_named_by_its_row_and_nothing_is_kept(
    cache: DatasetCache, tmp_path: Path, value: float | None, message: str
) -> None:
    x, labels = table()
    if value is None:
        labels[5432] = None
    else:
        x[5432, 3] = value
    write_parquet(tmp_path / "src", x, labels)
    opened = table_reader.open_table(tmp_path / "src" / "t.parquet", "t.parquet")
    assert opened.parts(opened.columns, [])[-1].first < 5432  # the bad row is in the last range

    with pytest.raises(DataFormatError, match=message) as refused:
        cache.ensure(str(tmp_path / "src"), "d")
    assert "\n" not in str(refused.value)
    assert not cache.path("d").exists() and cache.names() == []


def test_of_bad_values_in_two_ranges_the_first_row_is_named(cache: DatasetCache, tmp_path: Path) -> None:
    x, labels = table()
    x[5900, 0] = np.inf  # the last range: found first when its thread runs ahead
    x[1700, 4] = np.nan  # the end of the first range
    write_parquet(tmp_path / "src", x, labels)

    with pytest.raises(DataFormatError, match=r"column 'f4' of t\.parquet is not numeric \(row index 1700: 'nan'\)"):
        cache.ensure(str(tmp_path / "src"), "d")
    assert cache.names() == []
