"""Example files for `trainflow predict`: images (PNG, JPEG), CSV rows and .npy arrays, as the model's input."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from trainflow.client.errors import ClientError
from trainflow.client.images import load_image_file, to_model_input

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_ROWS = 100_000


def load_examples(path: Path, shape: tuple[int, ...], invert: bool = True) -> np.ndarray:
    """The examples in `path` as float32 [N, *shape]: one image, the rows of a CSV file, or a .npy array."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return load_image_file(path, shape, invert)[None]
    if suffix == ".csv":
        return _csv_rows(path, shape)
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ClientError(f"cannot read {path} as a .npy array ({exc}): save it with numpy.save") from None
        try:
            return to_model_input(array, shape)
        except ClientError as exc:
            raise ClientError(f"{path}: {exc}") from None
    raise ClientError(f"cannot send {path}: give PNG or JPEG images, .csv rows or .npy arrays")


def _csv_rows(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """Rows of numbers, one example each (a header line is skipped); exactly the model's feature count per row."""
    features = math.prod(shape)
    rows: list[list[float]] = []
    try:
        with open(path, newline="") as f:
            for number, row in enumerate(csv.reader(f), start=1):
                if not row or (number == 1 and not _numeric(row[0])):
                    continue  # a blank line, or the header
                if len(rows) >= MAX_ROWS:
                    raise ClientError(f"{path} has more than {MAX_ROWS} rows: send fewer at a time")
                if len(row) != features or not all(_numeric(v) for v in row):
                    raise ClientError(
                        f"{path} line {number} is not {features} numbers (the model's features, without a label): "
                        f"got {len(row)} values"
                    )
                rows.append([float(v) for v in row])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ClientError(f"cannot read {path} as CSV: {exc}") from None
    if not rows:
        raise ClientError(f"{path} has no rows of numbers")
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), *shape)


def _numeric(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False
