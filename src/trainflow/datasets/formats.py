"""Which dataset format a set of cached file names is, from the layout or as declared."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from trainflow.datasets.descriptor import FORMATS
from trainflow.datasets.errors import DataFormatError, DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# What PIL may decode an image file as, whatever its name: PIL otherwise picks any of its ~40 formats from
# the content (TIFF, PPM, ... and EPS, which runs Ghostscript).
IMAGE_FORMATS = ("PNG", "JPEG", "BMP")
NPY_NAMES = ("x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy")
_IMAGE_FILE = re.compile(r"^(train|test)/([^/]+)/[^/]+\Z")
_SIZE = re.compile(r"^(\d{1,5})(?:x(\d{1,5}))?\Z")


@dataclass(frozen=True)
class FormatOptions:
    """How to read a dataset: `format` None detects it from the layout."""

    format: str | None = None
    label_column: str | None = None
    image_size: tuple[int, int] | None = None  # (height, width); None: the most common size

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise DatasetError(f"unknown dataset format '{self.format}': use one of {', '.join(FORMATS)}")

    def key(self) -> str:
        """What of these options changes the prepared arrays (part of the descriptor's digest)."""
        return f"{self.format}|{self.label_column}|{self.image_size}"


def parse_image_size(text: str | None) -> tuple[int, int] | None:
    """'32' or '28x32' (height x width) as (height, width); DatasetError for anything else."""
    if text is None or text == "":
        return None
    match = _SIZE.fullmatch(text.strip())
    height = int(match.group(1)) if match else 0
    width = int(match.group(2) or height) if match else 0
    if not (1 <= height <= 4096 and 1 <= width <= 4096):
        raise DatasetError(f"invalid image size {text!r}: use N or HxW with sides from 1 to 4096, e.g. 32 or 28x28")
    return height, width


def idx_files(names: Sequence[str]) -> dict[str, str]:
    """The IDX files among `names` by role (x_train, y_train, x_test, y_test); DataFormatError if a role is ambiguous."""
    found: dict[str, list[str]] = {}
    for name in names:
        stem = name.rpartition("/")[2].lower()  # not PurePosixPath: this runs once per file of a dataset
        if not ("idx" in stem or "ubyte" in stem) or stem.endswith((".npy", ".npz", ".csv", ".txt")):
            continue
        split = "train" if "train" in stem else "test" if ("t10k" in stem or "test" in stem) else None
        role = "x" if ("image" in stem or "idx3" in stem) else "y" if ("label" in stem or "idx1" in stem) else None
        if split and role:
            found.setdefault(f"{role}_{split}", []).append(name)
    for role, candidates in found.items():
        if len(candidates) > 1:
            raise DataFormatError(
                f"several IDX files could be the {role.replace('_', ' ')} array ({', '.join(sorted(candidates))}): "
                "sync one set (--file, or a prefix holding only it)"
            )
    return {role: candidates[0] for role, candidates in found.items()}


def _matches(names: Sequence[str]) -> dict[str, bool]:
    basenames = {n.rpartition("/")[2] for n in names}
    return {
        "idx": len(idx_files(names)) == 4,
        "npz": any(n.endswith(".npz") for n in names),
        "npy": any(b in basenames for b in NPY_NAMES),
        "images": any(_IMAGE_FILE.match(n) and n.lower().endswith(IMAGE_SUFFIXES) for n in names),
        "csv": any(n.lower().endswith(".csv") for n in names),
        "parquet": any(n.lower().endswith(".parquet") for n in names),
    }


def detect(names: Sequence[str], options: FormatOptions) -> str | None:
    """The dataset's format: the declared one if the layout has it, else the one the layout shows, else None."""
    matches = _matches(names)
    if options.format is not None:
        if not matches[options.format]:
            raise DataFormatError(
                f"the source has no {_LAYOUTS[options.format]}, which --format {options.format} "
                "needs: check the URL, or name the format the files are in"
            )
        return options.format
    found = [fmt for fmt, ok in matches.items() if ok]
    if len(found) > 1:
        raise DataFormatError(
            f"the source holds files of several dataset formats ({', '.join(found)}): declare one with --format"
        )
    return found[0] if found else None


_LAYOUTS = {
    "idx": "IDX files (*train*images*, *train*labels*, *t10k* or *test* images and labels)",
    "npz": ".npz file (x_train, y_train, x_test, y_test)",
    "npy": ".npy files (x_train.npy, y_train.npy, x_test.npy, y_test.npy)",
    "images": "image folders (train/<class>/*.png|jpg, test/<class>/...)",
    "csv": ".csv file",
    "parquet": ".parquet file",
}
