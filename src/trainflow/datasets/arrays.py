"""IDX, NPZ and NPY datasets: the four arrays, found by name (NPZ members are extracted once into the cache)."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.formats import NPY_NAMES, FormatOptions, idx_files
from trainflow.datasets.layout import cached_path

ROLES = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class Built:
    """What a format's builder found: per role a cached file's name or a file it wrote into the work folder."""

    arrays: dict[str, str | Path]
    class_names: tuple[str, ...] | None = None  # None: labels are class indices, named "0", "1", ...


def build_idx(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    found = idx_files(names)
    missing = [role for role in ROLES if role not in found]
    if missing:
        raise DataFormatError(f"the IDX dataset has no {' or '.join(r.replace('_', ' ') for r in missing)} file: "
                              "add files named like train-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz)")
    return Built(dict(found))


def build_npy(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    built: dict[str, str | Path] = {}
    for role, wanted in zip(ROLES, NPY_NAMES, strict=True):
        candidates = [n for n in names if PurePosixPath(n).name == wanted]
        if len(candidates) != 1:
            problem = "is missing" if not candidates else f"is there {len(candidates)} times ({', '.join(candidates)})"
            raise DataFormatError(f"{wanted} {problem}: an NPY dataset is exactly x_train.npy, y_train.npy, "
                                  "x_test.npy and y_test.npy")
        built[role] = candidates[0]
    return Built(built)


def build_npz(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    archives = [n for n in names if n.endswith(".npz")]
    if len(archives) != 1:
        raise DataFormatError(f"an NPZ dataset is one .npz file, found {len(archives)} ({', '.join(archives)}): "
                              "sync a prefix holding only one")
    name = archives[0]
    try:
        with np.load(cached_path(directory, name), allow_pickle=False) as archive:
            missing = [role for role in ROLES if role not in archive.files]
            if missing:
                raise DataFormatError(f"{name} has no {', '.join(missing)} (it holds {', '.join(archive.files) or 'nothing'}): "
                                      "save it with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
            built: dict[str, str | Path] = {}
            for role in ROLES:
                path = work / f"{role}.npy"
                np.save(path, archive[role], allow_pickle=False)
                built[role] = path
            return Built(built)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataFormatError(f"{name} is not a readable .npz archive of numeric arrays ({exc}): "
                              "save it with numpy.savez (numbers only, no objects)") from None
