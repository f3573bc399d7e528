"""datasets: the node's dataset cache (fetch once, verify, describe, reuse), the array loader and sharding.

Names load on first use (PEP 562): a caller that needs one name (a descriptor, the MNIST file list)
does not import numpy and every format's reader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainflow.lazy_names import lazy_names

if TYPE_CHECKING:
    from trainflow.datasets.cache import DatasetCache, SyncResult, check_name, default_name
    from trainflow.datasets.descriptor import ArrayFiles, DatasetDescriptor, Normalization
    from trainflow.datasets.errors import DataFormatError, DatasetError
    from trainflow.datasets.formats import FormatOptions, parse_image_size
    from trainflow.datasets.idx import open_idx, write_idx
    from trainflow.datasets.loader import Dataset, load_dataset, load_descriptor
    from trainflow.datasets.manifest import Manifest
    from trainflow.datasets.mnist import ALL_FILES, Split, load_split, write_synthetic
    from trainflow.datasets.observer import SyncObserver
    from trainflow.datasets.shard import shard_range

_MODULES = {
    "ALL_FILES": ".mnist",
    "ArrayFiles": ".descriptor",
    "DataFormatError": ".errors",
    "Dataset": ".loader",
    "DatasetCache": ".cache",
    "DatasetDescriptor": ".descriptor",
    "DatasetError": ".errors",
    "FormatOptions": ".formats",
    "Manifest": ".manifest",
    "Normalization": ".descriptor",
    "Split": ".mnist",
    "SyncObserver": ".observer",
    "SyncResult": ".cache",
    "check_name": ".cache",
    "default_name": ".cache",
    "load_dataset": ".loader",
    "load_descriptor": ".loader",
    "load_split": ".mnist",
    "open_idx": ".idx",
    "parse_image_size": ".formats",
    "shard_range": ".shard",
    "write_idx": ".idx",
    "write_synthetic": ".mnist",
}

__all__ = [
    "ALL_FILES",
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

__getattr__, __dir__ = lazy_names(__name__, _MODULES)
