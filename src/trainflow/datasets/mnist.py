"""MNIST as four IDX files (the public mirror's layout) and how to load a split from the cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainflow.datasets.errors import DatasetError
from trainflow.datasets.idx import open_idx, unpack, write_idx
from trainflow.datasets.manifest import unpacked_path

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
ALL_FILES = tuple(name for pair in FILES.values() for name in pair)


@dataclass(frozen=True)
class Split:
    """Examples and labels [N], memory-mapped: MNIST's `load_split` gives uint8 [N, 28, 28], `load_dataset` [N, *input_shape]."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _find(directory: Path, name: str) -> Path:
    """The file `name` in `directory`, gzipped or not."""
    for candidate in (name, name.removesuffix(".gz")):
        if (directory / candidate).is_file():
            return directory / candidate
    raise DatasetError(f"{directory} has no {name}: is it an MNIST dataset (the four IDX files)?")


def _mapped(directory: Path, name: str) -> np.memmap:
    path = _find(directory, name)
    if path.suffix != ".gz":
        return open_idx(path)
    return open_idx(unpack(path, unpacked_path(directory, path.name)))


def load_split(directory: Path, split: str) -> Split:
    """Load `train` or `test` from a dataset directory (a cache entry or any folder of IDX files)."""
    if split not in FILES:
        raise DatasetError(f"unknown split '{split}': use one of {', '.join(FILES)}")
    images_name, labels_name = FILES[split]
    images = _mapped(directory, images_name)
    labels = _mapped(directory, labels_name)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match "
            "(expected [N, rows, cols] and [N])"
        )
    return Split(images, labels)


def write_synthetic(directory: Path, train: int = 512, test: int = 128, seed: int = 0) -> Path:
    """A small learnable MNIST-shaped dataset (for machines without the real one)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    # Each class is a distinct random 28x28 template plus noise: easy to learn, IDX-shaped.
    templates = rng.random((10, 28, 28)) > 0.7
    for split, count in (("train", train), ("test", test)):
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        noise = rng.random((count, 28, 28)) < 0.08
        images = ((templates[labels] ^ noise) * 255).astype(np.uint8)
        write_idx(directory / FILES[split][0], images)
        write_idx(directory / FILES[split][1], labels)
    return directory
