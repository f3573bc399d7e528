"""datasets: the node's dataset cache (fetch once, verify, reuse), the IDX reader and sharding."""

from trainflow.datasets.cache import DatasetCache, SyncResult, check_name, default_name
from trainflow.datasets.errors import DatasetError
from trainflow.datasets.idx import open_idx, write_idx
from trainflow.datasets.manifest import Manifest
from trainflow.datasets.mnist import ALL_FILES, DEFAULT_MNIST_URL, Split, load_split, write_synthetic
from trainflow.datasets.observer import SyncObserver
from trainflow.datasets.shard import shard_range

__all__ = [
    "ALL_FILES",
    "DEFAULT_MNIST_URL",
    "DatasetCache",
    "DatasetError",
    "Manifest",
    "Split",
    "SyncObserver",
    "SyncResult",
    "check_name",
    "default_name",
    "load_split",
    "open_idx",
    "shard_range",
    "write_idx",
    "write_synthetic",
]
