"""Bad data: one line naming the file and the fix, and nothing of the dataset left in the cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.datasets.sample_data import (
    breast_cancer,
    digits,
    write_arrays_npy,
    write_colour_folders,
    write_iris_csv,
    write_table,
)
from trainflow.datasets import DataFormatError, DatasetCache, FormatOptions


def shapes_differ(src: Path) -> None:
    x_train, y_train, _, y_test = digits()
    write_arrays_npy(src, x_train, y_train, np.zeros((len(y_test), 9, 9), np.uint8), y_test)


def label_out_of_range(src: Path) -> None:
    x_train, y_train, x_test, y_test = digits()
    y_test = y_test.copy()
    y_test[5] = 42
    write_arrays_npy(src, x_train, y_train, x_test, y_test)


def negative_label(src: Path) -> None:
    x_train, y_train, x_test, y_test = breast_cancer()
    write_arrays_npy(src, x_train, y_train - 1, x_test, y_test)


def labels_not_integers(src: Path) -> None:
    x_train, y_train, x_test, y_test = digits()
    src.mkdir(parents=True)
    np.savez(src / "d.npz", x_train=x_train, y_train=y_train + 0.5, x_test=x_test, y_test=y_test)


def npz_missing_array(src: Path) -> None:
    x_train, y_train, x_test, _ = digits()
    src.mkdir(parents=True)
    np.savez(src / "d.npz", x_train=x_train, y_train=y_train, x_test=x_test)


def empty_class_folder(src: Path) -> None:
    write_colour_folders(src, odd_size=False)
    (src / "train" / "purple").mkdir()
    (src / "train" / "purple" / "notes.txt").write_text("images to come")


def missing_class_folder(src: Path) -> None:
    write_colour_folders(src, odd_size=False)
    for image in (src / "test" / "green").iterdir():
        image.unlink()


def mixed_channels(src: Path) -> None:
    write_colour_folders(src, odd_size=False)
    Image.new("L", (12, 10), 128).save(src / "train" / "blue" / "gray.png")


def undecodable_image(src: Path) -> None:
    write_colour_folders(src, odd_size=False)
    data = (src / "train" / "red" / "001.jpg").read_bytes()
    (src / "train" / "red" / "001.jpg").write_bytes(data[: len(data) // 3])


def not_an_image(src: Path) -> None:
    write_colour_folders(src, odd_size=False)
    (src / "test" / "red" / "zz.png").write_bytes(b"<html>not a png</html>")


def decompression_bomb(src: Path) -> None:
    write_colour_folders(src, odd_size=False)
    Image.new("L", (6000, 6000)).save(src / "train" / "red" / "huge.png")  # 36 Mpx in a few kB


def non_numeric_column(src: Path) -> None:
    write_table(src / "train.csv", ["size", "colour", "label"], [[1.0, "red", 0], [2.0, "blue", 1]])
    write_table(src / "test.csv", ["size", "colour", "label"], [[1.5, "red", 0]])


def missing_label_column(src: Path) -> None:
    write_iris_csv(src)


def empty_label(src: Path) -> None:
    write_table(src / "t.csv", ["a", "label"], [[1, 0], [2, 1], [3, ""], [4, 1]])


def unknown_test_class(src: Path) -> None:
    write_table(src / "train.csv", ["a", "kind"], [[1, "x"], [2, "y"]])
    write_table(src / "test.csv", ["a", "kind"], [[1, "z"]])


CASES: dict[str, tuple[Callable[[Path], None], FormatOptions, tuple[str, ...]]] = {
    "train and test shapes differ": (shapes_differ, FormatOptions(), ("x_test.npy", "8x8", "9x9", "same shape")),
    "label out of range": (label_out_of_range, FormatOptions(), ("label 42", "y_test.npy", "out of range")),
    "negative label": (negative_label, FormatOptions(), ("label -1", "y_train.npy", "out of range")),
    "labels not integers": (labels_not_integers, FormatOptions(), ("y_train", "not integers", "0.5")),
    "npz without y_test": (npz_missing_array, FormatOptions(), ("d.npz", "y_test", "numpy.savez")),
    "empty class folder": (empty_class_folder, FormatOptions(), ("train/purple/", "no images")),
    "missing class folder": (missing_class_folder, FormatOptions(), ("test/green/", "missing or empty")),
    "mixed channels": (mixed_channels, FormatOptions(), ("train/blue/gray.png", "grayscale", "same channels")),
    "undecodable image": (undecodable_image, FormatOptions(), ("train/red/001.jpg", "replace or delete it")),
    "not an image": (not_an_image, FormatOptions(), ("test/red/zz.png", "not a readable image")),
    "decompression bomb": (decompression_bomb, FormatOptions(), ("train/red/huge.png", "decompression bomb")),
    "non-numeric column": (non_numeric_column, FormatOptions(), ("column 'colour'", "train.csv", "not numeric")),
    "missing label column": (
        missing_label_column,
        FormatOptions(label_column="kind"),
        ("train.csv", "no column 'kind'", "--label-column"),
    ),
    "empty label": (empty_label, FormatOptions(), ("line 4 of t.csv", "no 'label'")),
    "test class unknown": (unknown_test_class, FormatOptions(label_column="kind"), ("'z'", "test.csv", "not a class")),
    "declared format absent": (write_iris_csv, FormatOptions(format="images"), ("--format images", "image folders")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_is_one_line_naming_the_file_and_nothing_is_cached(
    cache: DatasetCache, tmp_path: Path, case: str
) -> None:
    write, options, expected = CASES[case]
    write(tmp_path / "src")

    with pytest.raises(DataFormatError) as refused:
        cache.ensure(str(tmp_path / "src"), "d", options=options)

    message = str(refused.value)
    assert "\n" not in message and message.startswith("dataset 'd': ")
    for part in expected:
        assert part in message
    assert not cache.path("d").exists() and cache.names() == []


def test_bad_new_content_drops_the_old_good_dataset_with_it(cache: DatasetCache, tmp_path: Path) -> None:
    source = write_colour_folders(tmp_path / "src", odd_size=False)
    assert cache.ensure(str(source), "d").descriptor is not None
    Image.new("L", (12, 10)).save(source / "test" / "red" / "gray.png")

    with pytest.raises(DataFormatError, match="test/red/gray.png"):
        cache.ensure(str(source), "d")
    assert not cache.path("d").exists()  # no descriptor describing files it was not built from

    (source / "test" / "red" / "gray.png").unlink()
    assert cache.ensure(str(source), "d").descriptor is not None  # fixed at the source: syncs again


def test_npz_member_longer_than_its_header_says_is_refused(cache: DatasetCache, tmp_path: Path) -> None:
    import zipfile

    x_train, y_train, x_test, y_test = digits()
    src = tmp_path / "src"
    src.mkdir()
    with zipfile.ZipFile(src / "d.npz", "w", zipfile.ZIP_DEFLATED) as archive:  # what numpy.savez_compressed writes
        for role, array in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test)):
            archive.writestr(f"{role}.npy", _npy(array, extra=0))
        archive.writestr("y_test.npy", _npy(y_test, extra=1 << 20))  # more data than its header declares
    with pytest.raises(DataFormatError, match=r"d\.npz is not a readable \.npz archive.*header says 297"):
        cache.ensure(str(src), "d")
    assert not cache.path("d").exists()


def _npy(array: np.ndarray, extra: int) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue() + bytes(extra)
