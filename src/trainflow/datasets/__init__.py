"""datasets: the node's dataset cache (fetch once, verify, describe, reuse), the array loader and sharding."""

from trainflow.datasets.cache import DatasetCache, SyncResult, check_name, default_name
from trainflow.datasets.descriptor import ArrayFiles, DatasetDescriptor, Normalization
from trainflow.datasets.errors import DataFormatError, DatasetError
from trainflow.datasets.formats import FormatOptions, parse_image_size
from trainflow.datasets.idx import open_idx, write_idx
from trainflow.datasets.loader import Dataset, load_dataset, load_descriptor
from trainflow.datasets.manifest import Manifest
from trainflow.datasets.mnist import (
    ALL_FILES,
    DEFAULT_MNIST_URL,
    Split,
    load_split,
    write_synthetic,
)
from trainflow.datasets.observer import SyncObserver
from trainflow.datasets.shard import shard_range

__all__ = [
    "ALL_FILES",
    "DEFAULT_MNIST_URL",
    "ArrayFiles",
    "DataFormatError",
    "Dataset",
    "DatasetCache",
    "DatasetDescriptor",
    "DatasetError",
    "FormatOptions",
    "Manifest",
    "Normalization",
    "Split",
    "SyncObserver",
    "SyncResult",
    "check_name",
    "default_name",
    "load_dataset",
    "load_descriptor",
    "load_split",
    "open_idx",
    "parse_image_size",
    "shard_range",
    "write_idx",
    "write_synthetic",
]
