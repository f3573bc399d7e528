"""Issue 22, items 7-9: array content that used to sync, train to nothing and fail late is refused at sync.

NaN/Inf features (or ones too large to standardise), examples holding no values and .npz archives
naming an array twice: each is one line naming the file, and nothing of the dataset is left in the cache.
"""

from __future__ import annotations

import io
import subprocess
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.commands import trainflow
from tests.datasets.sample_data import breast_cancer, digits, write_arrays_npy, write_table
from trainflow.datasets import DataFormatError, DatasetCache, write_idx


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def refused(cache: DatasetCache, source: Path) -> str:
    """The one-line DataFormatError a sync of `source` raises; asserts nothing of the dataset was kept."""
    with pytest.raises(DataFormatError) as error:
        cache.ensure(str(source), "d")
    message = str(error.value)
    assert "\n" not in message and message.startswith("dataset 'd': ")
    assert not cache.path("d").exists() and cache.names() == []
    return message


# Item 7: features must be finite numbers the descriptor can standardise.


def nan_in_npy_x_train(src: Path) -> None:
    x_train, y_train, x_test, y_test = breast_cancer()
    x_train = x_train.copy()
    x_train[17, 3] = np.nan
    write_arrays_npy(src, x_train, y_train, x_test, y_test)


def inf_in_npy_x_test(src: Path) -> None:
    x_train, y_train, x_test, y_test = breast_cancer()
    x_test = x_test.copy()
    x_test[-1, 0] = -np.inf
    write_arrays_npy(src, x_train, y_train, x_test, y_test)


def nan_in_npz_x_train(src: Path) -> None:
    x_train, y_train, x_test, y_test = digits()
    src.mkdir(parents=True)
    np.savez(src / "d.npz", x_train=x_train.astype(np.float32) * np.nan, y_train=y_train, x_test=x_test, y_test=y_test)


def nan_in_float_idx(src: Path) -> None:
    x_train, y_train, x_test, y_test = digits()
    src.mkdir(parents=True)
    noisy = x_train.astype(np.float32)
    noisy[0, 0, 0] = np.nan
    write_idx(src / "d-train-images-idx3-ubyte", noisy)
    write_idx(src / "d-train-labels-idx1-ubyte", y_train)
    write_idx(src / "d-test-images-idx3-ubyte", x_test)
    write_idx(src / "d-test-labels-idx1-ubyte", y_test)


def too_large_to_standardise(src: Path) -> None:
    x_train, y_train, x_test, y_test = breast_cancer()
    write_arrays_npy(src, x_train.astype(np.float64) * 1e200, y_train, x_test.astype(np.float64), y_test)


def csv_value_beyond_float32(src: Path) -> None:
    write_table(src / "t.csv", ["a", "b", "label"], [[1, 2.5, 0], [2, 1e300, 1], [3, 0.5, 0], [4, 1.5, 1], [5, 2, 0]])


NOT_FINITE: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "NaN in x_train.npy": (nan_in_npy_x_train, ("x_train.npy", "NaN or infinite", "example 17")),
    "-Inf in x_test.npy": (inf_in_npy_x_test, ("x_test.npy", "NaN or infinite", "example 118")),
    "NaN in an .npz member": (nan_in_npz_x_train, ("d.npz (x_train)", "NaN or infinite", "example 0")),
    "NaN in a float IDX file": (nan_in_float_idx, ("d-train-images-idx3-ubyte", "NaN or infinite")),
    "features too large to standardise": (too_large_to_standardise, ("x_train.npy", "too large", "example 0")),
    "a CSV value beyond float32": (csv_value_beyond_float32, ("column 'b' of t.csv", "1e+300", "line 3")),
}


@pytest.mark.parametrize("case", list(NOT_FINITE))
def test_features_that_are_not_finite_are_refused_at_sync_naming_the_file(
    cache: DatasetCache, tmp_path: Path, case: str
) -> None:
    write, expected = NOT_FINITE[case]
    write(tmp_path / "src")

    message = refused(cache, tmp_path / "src")

    for part in expected:
        assert part in message, message


def test_nan_features_are_one_error_line_from_data_sync(trainflow_home: Path, tmp_path: Path) -> None:
    nan_in_npy_x_train(tmp_path / "src")

    line = one_error_line(trainflow("data", "sync", str(tmp_path / "src"), "--name", "d"))

    assert "x_train.npy" in line and "NaN or infinite" in line
    assert not (trainflow_home / "cache" / "datasets" / "d").exists()


# Item 8: an example must hold at least one value.


def no_features_npy(src: Path) -> None:
    _, y_train, _, y_test = breast_cancer()
    write_arrays_npy(
        src, np.zeros((len(y_train), 0), np.float32), y_train, np.zeros((len(y_test), 0), np.float32), y_test
    )


def zero_width_images_npz(src: Path) -> None:
    _, y_train, _, y_test = digits()
    src.mkdir(parents=True)
    np.savez(
        src / "d.npz",
        x_train=np.zeros((len(y_train), 8, 0), np.uint8),
        y_train=y_train,
        x_test=np.zeros((len(y_test), 8, 0), np.uint8),
        y_test=y_test,
    )


def zero_channel_idx(src: Path) -> None:
    _, y_train, _, y_test = digits()
    src.mkdir(parents=True)
    write_idx(src / "d-train-images-idx3-ubyte", np.zeros((len(y_train), 0, 0), np.uint8))
    write_idx(src / "d-train-labels-idx1-ubyte", y_train)
    write_idx(src / "d-test-images-idx3-ubyte", np.zeros((len(y_test), 0, 0), np.uint8))
    write_idx(src / "d-test-labels-idx1-ubyte", y_test)


def label_column_only_csv(src: Path) -> None:
    write_table(src / "t.csv", ["label"], [[0], [1], [0], [1], [1]])


EMPTY_EXAMPLES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "[N, 0] features in .npy": (no_features_npy, ("x_train.npy", "(450, 0)", "no values")),
    "[N, 8, 0] images in .npz": (zero_width_images_npz, ("d.npz (x_train)", "(1500, 8, 0)", "no values")),
    "[N, 0, 0] images in IDX": (zero_channel_idx, ("d-train-images-idx3-ubyte", "no values")),
    "a table with only a label column": (label_column_only_csv, ("t.csv", "no feature columns")),
}


@pytest.mark.parametrize("case", list(EMPTY_EXAMPLES))
def test_examples_with_no_values_are_refused_at_sync(cache: DatasetCache, tmp_path: Path, case: str) -> None:
    write, expected = EMPTY_EXAMPLES[case]
    write(tmp_path / "src")

    message = refused(cache, tmp_path / "src")

    for part in expected:
        assert part in message, message


# Item 9: one member per array in an .npz archive.


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("second_name", ["x_train.npy", "x_train"])
def test_npz_naming_one_array_twice_is_refused(cache: DatasetCache, tmp_path: Path, second_name: str) -> None:
    x_train, y_train, x_test, y_test = digits()
    src = tmp_path / "src"
    src.mkdir()
    with zipfile.ZipFile(src / "d.npz", "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name": the point of this archive
        for role, array in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
            archive.writestr(f"{role}.npy", npy_bytes(array))
        archive.writestr(second_name, npy_bytes(np.zeros_like(x_train)))  # the one numpy.load would not show

    message = refused(cache, src)

    assert "d.npz" in message and "x_train" in message and "twice" in message
