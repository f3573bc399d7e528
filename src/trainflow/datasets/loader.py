"""Open a cached dataset's arrays, memory-mapped, whatever format they came in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainflow.datasets.array_files import open_array
from trainflow.datasets.descriptor import DatasetDescriptor, read_descriptor
from trainflow.datasets.errors import DatasetError
from trainflow.datasets.layout import checked_directory
from trainflow.datasets.mnist import Split


@dataclass(frozen=True)
class Dataset:
    """A cached dataset: its descriptor and both splits, examples shaped [N, *descriptor.input_shape]."""

    descriptor: DatasetDescriptor
    train: Split
    test: Split


def load_descriptor(directory: Path) -> DatasetDescriptor:
    """The descriptor of the dataset in `directory` (a cache entry, or a plain folder of IDX files)."""
    descriptor = read_descriptor(checked_directory(directory))
    if descriptor is not None:
        return descriptor
    from trainflow.datasets.prepare import describe_plain_folder

    return describe_plain_folder(directory)


def load_dataset(directory: Path) -> Dataset:
    """Both splits of the dataset in `directory`, memory-mapped, with its descriptor."""
    descriptor = load_descriptor(directory)
    files = descriptor.arrays
    shape = descriptor.input_shape
    train = Split(
        _examples(directory, files.x_train, descriptor.train_count, shape), open_array(directory, files.y_train)
    )
    test = Split(_examples(directory, files.x_test, descriptor.test_count, shape), open_array(directory, files.y_test))
    for split, count in ((train, descriptor.train_count), (test, descriptor.test_count)):
        if split.labels.shape != (count,):
            raise DatasetError(
                f"{directory}: the arrays no longer match {directory / 'descriptor.json'}: "
                f"remove the dataset (trainflow data rm {directory.name}) and sync again"
            )
    return Dataset(descriptor, train, test)


def _examples(directory: Path, name: str, count: int, shape: tuple[int, ...]) -> np.ndarray:
    array = open_array(directory, name)
    if array.shape[0] != count or int(np.prod(array.shape[1:])) != int(np.prod(shape)):
        raise DatasetError(
            f"{directory}: {name} no longer matches {directory / 'descriptor.json'}: "
            f"remove the dataset (trainflow data rm {directory.name}) and sync again"
        )
    return array.reshape((count, *shape))  # a view: still memory-mapped
