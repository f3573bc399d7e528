"""IDX, NPZ and NPY datasets: the four arrays, found by name (NPZ members are extracted once into the cache)."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from trainflow.datasets.descriptor import Normalization
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.formats import NPY_NAMES, FormatOptions, idx_files
from trainflow.datasets.layout import cached_path

ROLES = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class Built:
    """What a format's builder found: per role a cached file's name or a file it wrote into the work folder."""

    arrays: dict[str, str | Path]
    class_names: tuple[str, ...] | None = None  # None: labels are class indices, named "0", "1", ...
    shown_as: dict[str, str] = field(default_factory=dict)  # per role, what messages call an array it rewrote
    # Set by a builder that computed them while writing the arrays (tables): not computed again from the files.
    normalization: Normalization | None = None
    finite: bool = False  # every feature is known finite and within float32's range


def build_idx(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    found = idx_files(names)
    missing = [role for role in ROLES if role not in found]
    if missing:
        raise DataFormatError(
            f"the IDX dataset has no {' or '.join(r.replace('_', ' ') for r in missing)} file: "
            "add files named like train-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz)"
        )
    return Built(dict(found))


def build_npy(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    built: dict[str, str | Path] = {}
    for role, wanted in zip(ROLES, NPY_NAMES, strict=True):
        candidates = [n for n in names if PurePosixPath(n).name == wanted]
        if len(candidates) != 1:
            problem = "is missing" if not candidates else f"is there {len(candidates)} times ({', '.join(candidates)})"
            raise DataFormatError(
                f"{wanted} {problem}: an NPY dataset is exactly x_train.npy, y_train.npy, x_test.npy and y_test.npy"
            )
        built[role] = candidates[0]
    return Built(built)


def build_npz(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    archives = [n for n in names if n.endswith(".npz")]
    if len(archives) != 1:
        raise DataFormatError(
            f"an NPZ dataset is one .npz file, found {len(archives)} ({', '.join(archives)}): "
            "sync a prefix holding only one"
        )
    name = archives[0]
    try:
        with zipfile.ZipFile(cached_path(directory, name)) as archive:
            members = _members(archive, name)
            missing = [role for role in ROLES if role not in members]
            if missing:
                raise DataFormatError(
                    f"{name} has no {', '.join(missing)} (it holds {', '.join(members) or 'nothing'}): "
                    "save it with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
                )
            check_space(work, sum(members[r].file_size for r in ROLES), name)
            built: dict[str, str | Path] = {}
            for role in ROLES:
                built[role] = _extract(archive, members[role], work / f"{role}.npy")
            return Built(built, shown_as={role: f"{name} ({role})" for role in ROLES})
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataFormatError(
            f"{name} is not a readable .npz archive of numeric arrays ({exc}): "
            "save it with numpy.savez (numbers only, no objects)"
        ) from None


def _members(archive: zipfile.ZipFile, name: str) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name (as numpy.load names them); DataFormatError when a name is there twice."""
    members: dict[str, zipfile.ZipInfo] = {}
    for member in archive.infolist():
        key = member.filename.removesuffix(".npy")
        if key in members:
            raise DataFormatError(
                f"{name} holds {key} twice ({members[key].filename} and {member.filename}), so which array "
                "is meant is unclear: save it again with numpy.savez"
            )
        members[key] = member
    return members


def check_space(work: Path, needed: int, name: str) -> None:
    """DataFormatError when the arrays about to be written would not fit on the cache's disk."""
    free = shutil.disk_usage(work).free
    if needed > free:
        raise DataFormatError(
            f"{name} would take {needed / 2**30:.1f} GiB in the cache but only {free / 2**30:.1f} GiB "
            "is free: free some space or make the dataset smaller"
        )


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, dest: Path) -> Path:
    """Stream one .npy member to `dest` in chunks (never the whole array in memory)."""
    with archive.open(member) as src, open(dest, "wb") as out:
        version = np.lib.format.read_magic(src)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(src)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(src)
        else:
            raise ValueError(f"{member.filename} is in .npy format version {version}")
        if dtype.hasobject:
            raise ValueError(f"{member.filename} holds Python objects")
        np.lib.format.write_array_header_1_0(
            out, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": shape}
        )
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        copied = 0
        while chunk := src.read(1 << 20):
            copied += len(chunk)
            if copied > expected:
                break
            out.write(chunk)
    if copied != expected:
        raise ValueError(f"{member.filename} holds {copied} bytes of data where its header says {expected}")
    return dest
