"""Parquet columns of every numeric type, with and without nulls, read straight from pyarrow's buffers: the same
numbers as casting them, a null named by its row, and no pandas loaded on the way (~0.25 s of CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainflow.datasets import DataFormatError, DatasetCache, load_dataset, table_reader

ROWS = 3000


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_reader, "BATCH_ROWS", 128)


def write(src: Path, columns: dict[str, pa.Array]) -> str:
    src.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), src / "t.parquet", row_group_size=700)  # batches cut across row groups
    return str(src)


def test_columns_of_each_numeric_type_give_their_values_as_float32(cache: DatasetCache, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ints = rng.integers(-1000, 1000, ROWS)
    floats = rng.normal(size=ROWS) * 1e3
    columns = {
        "i8": pa.array(ints.clip(-128, 127).astype(np.int8)),
        "u16": pa.array(np.abs(ints).astype(np.uint16)),
        "i64": pa.array(ints),
        "f16": pa.array(floats.astype(np.float16)),
        "f32": pa.array(floats.astype(np.float32)),
        "f64": pa.array(floats),
        "label": pa.array(rng.integers(0, 3, ROWS)),
    }
    result = cache.ensure(write(tmp_path / "src", columns), "d")

    dataset = load_dataset(result.path)
    x = np.concatenate([np.asarray(dataset.train.images), np.asarray(dataset.test.images)])
    features = [c for c in columns if c != "label"]
    whole = np.column_stack([columns[c].to_numpy().astype(np.float64) for c in features]).astype(np.float32)
    assert x.dtype == np.float32
    assert np.array_equal(np.sort(x, axis=0), np.sort(whole, axis=0))


@pytest.mark.parametrize("kind", [pa.float32(), pa.float64(), pa.int64()])
def test_a_null_deep_in_a_parquet_feature_column_is_named_by_its_row(
    cache: DatasetCache, tmp_path: Path, kind: pa.DataType
) -> None:
    values: list[int | None] = [int(v) for v in np.arange(ROWS) % 50]
    values[2345] = None
    columns = {"a": pa.array(np.ones(ROWS)), "b": pa.array(values, type=kind), "label": pa.array(np.arange(ROWS) % 2)}

    with pytest.raises(DataFormatError, match=r"column 'b' of t\.parquet is not numeric \(row index 2345: ''\)"):
        cache.ensure(write(tmp_path / "src", columns), "d")
    assert cache.names() == []


def test_a_missing_parquet_label_deep_in_the_file_is_named_by_its_row_index(
    cache: DatasetCache, tmp_path: Path
) -> None:
    labels: list[str | None] = ["cat", "dog", "eel"] * (ROWS // 3)
    labels[2500] = None
    columns = {"a": pa.array(np.arange(ROWS, dtype=np.float32)), "label": pa.array(labels)}

    with pytest.raises(DataFormatError, match=r"row index 2500 of t\.parquet has no 'label'"):
        cache.ensure(write(tmp_path / "src", columns), "d")
    assert cache.names() == []


def test_a_table_sync_loads_neither_pandas_nor_pyarrow_compute_nor_pillow(tmp_path: Path) -> None:
    """Each takes 0.05-0.3 s of CPU to import, and a Parquet file of integer labels needs none of them."""
    columns = {"a": pa.array(np.arange(ROWS, dtype=np.float32)), "label": pa.array(np.arange(ROWS) % 3)}
    src = write(tmp_path / "src", columns)
    code = (
        "import sys; from pathlib import Path; from trainflow.datasets import DatasetCache; "
        "DatasetCache(Path(sys.argv[1])).ensure(sys.argv[2], 'd'); "
        "print(sorted({'pandas', 'pyarrow.compute', 'PIL'} & set(sys.modules)))"
    )
    env = dict(os.environ, TRAINFLOW_HOME=str(tmp_path / "home"))
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "cache"), src], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_float32s_largest_number_is_kept_and_a_float64_just_past_it_is_refused(
    cache: DatasetCache, tmp_path: Path
) -> None:
    top = float(np.finfo(np.float32).max)
    values = np.zeros(ROWS)
    values[1500] = top
    label = pa.array(np.arange(ROWS) % 2)
    kept = cache.ensure(write(tmp_path / "kept", {"a": pa.array(values), "label": label}), "kept")
    dataset = load_dataset(kept.path)
    assert np.concatenate([dataset.train.images, dataset.test.images]).max() == np.float32(top)

    values[2000] = top * (1 + 2**-30)  # rounds to float32's largest number, but is past it
    with pytest.raises(DataFormatError, match=r"column 'a' of t\.parquet holds .* \(row index 2000\), beyond float32"):
        cache.ensure(write(tmp_path / "past", {"a": pa.array(values), "label": label}), "past")
    assert cache.names() == ["kept"]


@pytest.mark.parametrize("kind", [pa.int8(), pa.uint8(), pa.int16(), pa.uint32(), pa.int64(), pa.uint64()])
def test_integer_labels_of_each_type_give_the_labels_their_text_gives(
    cache: DatasetCache, tmp_path: Path, kind: pa.DataType
) -> None:
    labels = np.random.default_rng(5).integers(0, 120, ROWS)
    labels[:3] = [119, 0, 7]  # new labels in later batches too (128-row batches, 0-119)
    features = pa.array(np.arange(ROWS, dtype=np.float32))
    as_text = cache.ensure(write(tmp_path / "text", {"a": features, "label": pa.array(labels.astype(str))}), "text")
    as_ints = cache.ensure(write(tmp_path / "ints", {"a": features, "label": pa.array(labels, type=kind)}), "ints")

    text, ints = load_dataset(as_text.path), load_dataset(as_ints.path)
    for split in ("train", "test"):
        assert np.array_equal(np.asarray(getattr(ints, split).labels), np.asarray(getattr(text, split).labels))
        assert np.array_equal(np.asarray(getattr(ints, split).images), np.asarray(getattr(text, split).images))
    assert ints.descriptor.class_names == text.descriptor.class_names


@pytest.mark.parametrize(("kind", "bad"), [(pa.int8(), -128), (pa.int64(), -3), (pa.int64(), 1 << 40)])
def test_an_integer_label_out_of_range_deep_in_a_parquet_file_is_refused(
    cache: DatasetCache, tmp_path: Path, kind: pa.DataType, bad: int
) -> None:
    labels = np.arange(ROWS) % 4
    labels[2600] = bad
    columns = {"a": pa.array(np.ones(ROWS, dtype=np.float32)), "label": pa.array(labels, type=kind)}

    named = rf"label {bad} at row index 2600 of t\.parquet \([\w-]+ part\) is out of range"
    with pytest.raises(DataFormatError, match=named):
        cache.ensure(write(tmp_path / "src", columns), "d")
    assert cache.names() == []


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_an_integer_label_past_int64_deep_in_the_file_is_refused_by_its_value(
    cache: DatasetCache, tmp_path: Path, fmt: str
) -> None:
    huge = (1 << 64) - 1
    labels = (np.arange(ROWS) % 4).astype(np.uint64)
    labels[2600] = huge
    src = tmp_path / "src"
    if fmt == "parquet":
        write(src, {"a": pa.array(np.ones(ROWS, dtype=np.float32)), "label": pa.array(labels, type=pa.uint64())})
    else:
        src.mkdir()
        (src / "t.csv").write_text("a,label\n" + "".join(f"1.0,{label}\n" for label in labels.tolist()))

    at = "line 2602" if fmt == "csv" else "row index 2600"
    with pytest.raises(DataFormatError, match=rf"label {huge} at {at} of t\.{fmt} \([\w-]+ part\) is out of range"):
        cache.ensure(str(src), "d")
    assert cache.names() == []
