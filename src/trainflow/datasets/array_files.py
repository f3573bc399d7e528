"""Open one array file of a cached dataset, memory-mapped: IDX, gzipped IDX (unpacked once) or .npy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainflow.datasets.errors import DatasetError
from trainflow.datasets.idx import open_idx, unpack
from trainflow.datasets.layout import cached_path
from trainflow.datasets.manifest import unpacked_path


def open_array(directory: Path, name: str) -> np.ndarray:
    """Memory-map the array file `name` (IDX, gzipped IDX or .npy) of the dataset in `directory`."""
    path = cached_path(directory, name)
    if name.endswith(".npy"):
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise DatasetError(f"{path} is missing: sync the dataset again") from None
        except (ValueError, OSError) as exc:
            raise DatasetError(
                f"{name} is not a readable .npy array ({exc}): save it with numpy.save (numbers only, no objects)"
            ) from None
    if name.endswith(".gz"):
        path = unpack(path, unpacked_path(directory, name))
    return open_idx(path)
