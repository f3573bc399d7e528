"""Real small datasets (scikit-learn's bundled ones, no download) written into each format trainflow reads."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine

from trainflow.datasets import write_idx

DIGITS_TEST = 297  # the last 297 of scikit-learn's 1797 digits are the test split


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """8x8 digit images as uint8 0..255 [N, 8, 8] and labels, split into train and test."""
    data = load_digits()
    images = (data.images * (255 / 16)).round().astype(np.uint8)
    labels = data.target.astype(np.uint8)
    return images[:-DIGITS_TEST], labels[:-DIGITS_TEST], images[-DIGITS_TEST:], labels[-DIGITS_TEST:]


def write_digits_idx(directory: Path) -> Path:
    """An EMNIST-style stem, one split gzipped and one not."""
    x_train, y_train, x_test, y_test = digits()
    directory.mkdir(parents=True, exist_ok=True)
    write_idx(directory / "digits-train-images-idx3-ubyte.gz", x_train)
    write_idx(directory / "digits-train-labels-idx1-ubyte.gz", y_train)
    write_idx(directory / "digits-test-images-idx3-ubyte", x_test)
    write_idx(directory / "digits-test-labels-idx1-ubyte", y_test)
    (directory / "README.txt").write_text("scikit-learn digits as IDX\n")
    return directory


def write_digits_npz(directory: Path) -> Path:
    x_train, y_train, x_test, y_test = digits()
    directory.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(directory / "digits.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return directory


def write_arrays_npy(
    directory: Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
        np.save(directory / f"{name}.npy", array)
    return directory


def breast_cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_breast_cancer()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    return x[:450], y[:450], x[450:], y[450:]


def write_digits_folders(directory: Path) -> Path:
    """Grayscale PNGs in train/<digit>/ and test/<digit>/."""
    x_train, y_train, x_test, y_test = digits()
    for split, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = directory / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "L").save(folder / f"{i:04d}.png")
    return directory


COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}


def write_colour_folders(
    directory: Path, per_class: tuple[int, int] = (12, 4), size: tuple[int, int] = (10, 12), odd_size: bool = True
) -> Path:
    """RGB images (height x width `size`) whose class is their dominant colour; one image of another size."""
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), per_class, strict=True):
        for cls, rgb in COLOURS.items():
            folder = directory / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                noise = rng.integers(-20, 20, size=(*size, 3))
                pixels = np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)
                image = Image.fromarray(pixels, "RGB")
                if odd_size and split == "train" and cls == "red" and i == 0:
                    image = image.resize((size[1] * 2, size[0] * 2))  # resized back at sync time
                image.save(folder / f"{i:03d}.{'jpg' if i % 2 else 'png'}", quality=95)
    return directory


def write_table(path: Path, columns: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def write_iris_csv(directory: Path) -> Path:
    """train.csv and test.csv, species names as string labels in a column named 'species'."""
    data = load_iris()
    columns = [n.replace(" (cm)", "").replace(" ", "_") for n in data.feature_names] + ["species"]
    rows = [[*map(float, x), data.target_names[y]] for x, y in zip(data.data, data.target, strict=True)]
    write_table(directory / "train.csv", columns, [r for i, r in enumerate(rows) if i % 5])
    write_table(directory / "test.csv", columns, [r for i, r in enumerate(rows) if not i % 5])
    return directory


def write_wine_csv(directory: Path) -> Path:
    """One table with integer labels in a column named 'target' (trainflow holds out a test split)."""
    data = load_wine()
    rows = [[*map(float, x), int(y)] for x, y in zip(data.data, data.target, strict=True)]
    write_table(directory / "wine.csv", [*data.feature_names, "target"], rows)
    return directory
