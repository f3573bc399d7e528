from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from trainflow.datasets import DatasetCache, DatasetError, load_split, open_idx, shard_range, write_idx, write_synthetic


def test_idx_roundtrip_is_memory_mapped(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte", array)
    mapped = open_idx(tmp_path / "a-idx3-ubyte")
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(mapped, array)


def test_big_endian_types_read_correctly(tmp_path: Path) -> None:
    array = np.array([[1.5, -2.0], [3.25, 1e6]], dtype=np.float32)
    write_idx(tmp_path / "f", array)
    np.testing.assert_array_equal(open_idx(tmp_path / "f"), array)


def test_file_that_is_not_idx_gets_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"<html>not found</html>")
    with pytest.raises(DatasetError, match="is not an IDX file"):
        open_idx(tmp_path / "x")


def test_truncated_idx_says_expected_and_actual_size(tmp_path: Path) -> None:
    write_idx(tmp_path / "t", np.zeros((10, 28, 28), np.uint8))
    data = (tmp_path / "t").read_bytes()
    (tmp_path / "t").write_bytes(data[:-5])
    with pytest.raises(DatasetError, match=r"damaged: header says \(10, 28, 28\)"):
        open_idx(tmp_path / "t")


def test_split_from_cache_is_unpacked_once(tmp_path: Path, mnist_dir: Path) -> None:
    cache = DatasetCache(tmp_path / "cache")
    path = cache.ensure(str(mnist_dir), "mnist").path
    split = load_split(path, "test")
    assert split.images.shape[1:] == (28, 28) and split.images.dtype == np.uint8
    assert len(split) == split.labels.shape[0] and set(np.unique(split.labels)) <= set(range(10))
    unpacked = sorted((path / ".unpacked").iterdir())
    mtimes = [p.stat().st_mtime_ns for p in unpacked]
    load_split(path, "test")
    assert [p.stat().st_mtime_ns for p in sorted((path / ".unpacked").iterdir())] == mtimes


def test_corrupt_gzip_is_reported(tmp_path: Path) -> None:
    write_synthetic(tmp_path, train=8, test=8)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DatasetError, match="not a valid gzip file"):
        load_split(tmp_path, "test")


def test_mismatched_images_and_labels_are_refused(tmp_path: Path) -> None:
    write_synthetic(tmp_path, train=8, test=8)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(DatasetError, match="do not match"):
        load_split(tmp_path, "test")


def test_missing_file_names_what_is_expected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="has no train-images-idx3-ubyte.gz"):
        load_split(tmp_path, "train")


def test_uncompressed_files_work_too(tmp_path: Path) -> None:
    write_synthetic(tmp_path / "gz", train=16, test=8)
    for gz in (tmp_path / "gz").iterdir():
        (tmp_path / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    assert len(load_split(tmp_path, "train")) == 16


@pytest.mark.parametrize(("n", "world"), [(10, 3), (8000, 2), (5, 5), (3, 4)])
def test_shards_cover_every_example_once(n: int, world: int) -> None:
    covered = [i for rank in range(world) for i in shard_range(n, rank, world)]
    assert covered == list(range(n))
    sizes = [len(shard_range(n, r, world)) for r in range(world)]
    assert max(sizes) - min(sizes) <= 1


def test_rank_outside_world_is_refused() -> None:
    with pytest.raises(ValueError):
        shard_range(10, 2, 2)
