"""Every dataset format lands in the cache with a manifest, checksums, a descriptor and zero-byte warm syncs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.datasets.sample_data import (
    COLOURS,
    breast_cancer,
    digits,
    write_arrays_npy,
    write_colour_folders,
    write_digits_folders,
    write_digits_idx,
    write_digits_npz,
    write_iris_csv,
    write_wine_csv,
)
from trainflow.datasets import DatasetCache, DatasetError, FormatOptions, load_dataset, load_descriptor, load_split


def synced_twice(cache: DatasetCache, source: Path, options: FormatOptions | None = None):
    first = cache.ensure(str(source), "d", options=options)
    descriptor_file = first.path / "descriptor.json"
    stamp = descriptor_file.stat().st_mtime_ns
    second = cache.ensure(str(source), "d", options=options)
    assert second.bytes_downloaded == 0 and second.downloaded == []
    assert descriptor_file.stat().st_mtime_ns == stamp, "a warm sync must not rebuild the dataset"
    manifest = json.loads((first.path / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == hashlib.sha256((source / name).read_bytes()).hexdigest()
    assert second.descriptor == first.descriptor
    return first


def digits_sources() -> dict[str, Callable[[Path], Path]]:
    return {
        "idx": write_digits_idx,
        "npz": write_digits_npz,
        "images": write_digits_folders,
        "npy": lambda d: write_arrays_npy(d, *digits()),
    }


@pytest.mark.parametrize("fmt", ["idx", "npz", "npy", "images"])
def test_digits_in_each_image_format_sync_to_the_same_arrays(cache: DatasetCache, tmp_path: Path, fmt: str) -> None:
    source = digits_sources()[fmt](tmp_path / fmt)
    result = synced_twice(cache, source)

    d = result.descriptor
    assert d is not None and d.format == fmt
    assert (d.input_shape, d.dtype, d.kind) == ((1, 8, 8), "uint8", "image")
    assert (d.train_count, d.test_count) == (1500, 297)
    assert d.class_names == tuple(str(i) for i in range(10))
    assert d.normalization.scale == pytest.approx(1 / 255) and d.normalization.mean == (0.0,)
    dataset = load_dataset(result.path)
    x_train, _, x_test, y_test = digits()
    assert isinstance(dataset.train.images, np.memmap) and dataset.train.images.shape == (1500, 1, 8, 8)
    if fmt == "images":  # class folders reorder the examples: compare as sets of (label, image)
        assert sorted(zip(y_test.tolist(), map(bytes, x_test), strict=True)) == sorted(
            zip(dataset.test.labels.tolist(), map(bytes, np.asarray(dataset.test.images)[:, 0]), strict=True)
        )
    else:
        assert np.array_equal(dataset.train.images[:, 0], x_train) and np.array_equal(dataset.test.labels, y_test)


def test_mnist_cache_entry_keeps_its_old_reader_and_gains_a_descriptor(cache: DatasetCache, mnist_dir: Path) -> None:
    result = cache.ensure(str(mnist_dir), "mnist")
    d = result.descriptor
    assert d is not None and (d.format, d.input_shape, d.num_classes) == ("idx", (1, 28, 28), 10)
    old = load_split(result.path, "test")
    assert old.images.shape[1:] == (28, 28) and d.test_count == len(old)
    assert load_descriptor(mnist_dir) == d.__class__(
        **{**d.__dict__, "source_digest": ""}
    )  # a plain folder, not written to


def test_rgb_image_folders_are_decoded_once_at_the_most_common_size(cache: DatasetCache, tmp_path: Path) -> None:
    source = write_colour_folders(tmp_path / "colours")
    result = synced_twice(cache, source)

    d = result.descriptor
    assert d is not None and (d.format, d.input_shape, d.class_names) == ("images", (3, 10, 12), tuple(sorted(COLOURS)))
    assert (d.train_count, d.test_count) == (36, 12) and d.normalization.mean == (0.0, 0.0, 0.0)
    dataset = load_dataset(result.path)
    means = np.asarray(dataset.test.images, dtype=np.float64).mean(axis=(2, 3))  # [N, 3]
    for mean, label in zip(means, dataset.test.labels, strict=True):
        assert np.argmax(mean) == np.argmax(COLOURS[d.class_names[label]])  # channels first, colour kept
    assert np.allclose(means[dataset.test.labels == 2], COLOURS["red"], atol=12)


def test_declared_image_size_resizes_every_image(cache: DatasetCache, tmp_path: Path) -> None:
    source = write_colour_folders(tmp_path / "colours")
    result = cache.ensure(str(source), "d", options=FormatOptions(image_size=(16, 16)))
    assert result.descriptor is not None and result.descriptor.input_shape == (3, 16, 16)
    assert load_dataset(result.path).train.images.shape == (36, 3, 16, 16)


def test_csv_with_string_labels_gets_sorted_class_names_and_training_statistics(
    cache: DatasetCache, tmp_path: Path
) -> None:
    source = write_iris_csv(tmp_path / "iris")
    result = synced_twice(cache, source, FormatOptions(label_column="species"))

    d = result.descriptor
    assert d is not None and (d.format, d.kind, d.input_shape, d.dtype) == ("csv", "table", (4,), "float32")
    assert d.class_names == ("setosa", "versicolor", "virginica") and (d.train_count, d.test_count) == (120, 30)
    dataset = load_dataset(result.path)
    train = np.asarray(dataset.train.images, dtype=np.float64)
    assert np.allclose(d.normalization.mean, train.mean(axis=0)) and np.allclose(d.normalization.std, train.std(axis=0))
    normalized = d.normalization.apply(dataset.train.images)
    assert np.allclose(normalized.mean(axis=0), 0, atol=1e-5) and np.allclose(normalized.std(axis=0), 1, atol=1e-4)
    assert sorted(set(dataset.test.labels.tolist())) == [0, 1, 2]


def test_one_csv_with_integer_labels_is_split_the_same_way_every_sync(cache: DatasetCache, tmp_path: Path) -> None:
    source = write_wine_csv(tmp_path / "wine")
    result = synced_twice(cache, source)  # 'target' is found without --label-column
    d = result.descriptor
    assert d is not None and d.input_shape == (13,) and d.class_names == ("0", "1", "2")
    assert (d.train_count, d.test_count) == (143, 35)
    first = np.asarray(load_dataset(result.path).test.images).copy()
    cache.remove("d")
    again = cache.ensure(str(source), "d")
    assert np.array_equal(np.asarray(load_dataset(again.path).test.images), first)


def test_npy_feature_vectors_are_a_table(cache: DatasetCache, tmp_path: Path) -> None:
    source = write_arrays_npy(tmp_path / "bc", *breast_cancer())
    d = synced_twice(cache, source).descriptor
    assert d is not None and (d.format, d.kind, d.input_shape, d.class_names) == ("npy", "table", (30,), ("0", "1"))
    assert len(d.normalization.mean) == 30 and min(d.normalization.std) > 0


def test_channels_last_arrays_are_stored_channels_first(cache: DatasetCache, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 255, (20, 9, 7, 3), dtype=np.uint8)
    x_test = rng.integers(0, 255, (5, 9, 7, 3), dtype=np.uint8)
    source = write_arrays_npy(tmp_path / "hwc", x_train, np.arange(20) % 4, x_test, np.arange(5) % 4)
    result = cache.ensure(str(source), "d")
    assert result.descriptor is not None and result.descriptor.input_shape == (3, 9, 7)
    assert np.array_equal(load_dataset(result.path).train.images, x_train.transpose(0, 3, 1, 2))


def test_whole_number_float_labels_are_accepted_as_classes(cache: DatasetCache, tmp_path: Path) -> None:
    x_train, y_train, x_test, y_test = breast_cancer()
    source = write_arrays_npy(tmp_path / "f", x_train, y_train.astype(np.float64), x_test, y_test.astype(np.float32))
    result = cache.ensure(str(source), "d")
    assert result.descriptor is not None and result.descriptor.class_names == ("0", "1")
    assert load_dataset(result.path).train.labels.dtype == np.int64


def test_changed_source_rebuilds_the_arrays_and_drops_the_old_ones(cache: DatasetCache, tmp_path: Path) -> None:
    source = write_colour_folders(tmp_path / "colours")
    first = cache.ensure(str(source), "d")
    (source / "test" / "blue" / "000.png").unlink()
    second = cache.ensure(str(source), "d")
    assert second.descriptor is not None and second.descriptor.test_count == first.descriptor.test_count - 1
    assert [p.name for p in (second.path / ".prepared").iterdir()] == [second.descriptor.source_digest[:16]]
    assert load_dataset(second.path).test.labels.shape == (11,)


def test_files_in_no_known_format_are_cached_without_a_descriptor(cache: DatasetCache, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("hello")
    result = cache.ensure(str(tmp_path / "src"), "d")
    assert result.descriptor is None and not (result.path / "descriptor.json").exists()


def test_descriptor_altered_to_point_outside_is_refused(cache: DatasetCache, tmp_path: Path) -> None:
    result = cache.ensure(str(write_wine_csv(tmp_path / "wine")), "d")
    path = result.path / "descriptor.json"
    raw = json.loads(path.read_text())
    raw["arrays"]["x_train"] = "../../../../etc/passwd"
    path.write_text(json.dumps(raw))
    with pytest.raises(
        DatasetError, match=r"'\.\./\.\./\.\./\.\./etc/passwd' as its x_train array.*trainflow data rm d"
    ):
        load_dataset(result.path)
