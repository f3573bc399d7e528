"""Decoding a block of image files into their rows of the dataset's uint8 [N, C, H, W] array, in one open each.

A worker opens every image once: it reads the header (size, channels) and, when the image has the
size the array is being built at (or every image is resized to a declared size), decodes it straight
into its row. What it saw comes back as a small `BlockReport`, so the caller can check the channels,
find the most common size and decode again only the images that were not at it.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.formats import IMAGE_FORMATS

MAX_PIXELS = 1 << 25  # 32 Mpx per image: more is a decompression bomb, not a training example
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True)
class Target:
    """Where a block's rows go: the .npy file `dest` with its data at `offset`, at `channels` x `size`."""

    dest: Path
    offset: int
    channels: int
    size: tuple[int, int]  # (height, width)
    resize_all: bool  # decode every image at `size` (a declared size); else only those already at it


@dataclass
class BlockReport:
    """What images were seen: sizes (first seen first), per channel count the images and the first one's name.

    `skipped` (a block's own) are the rows left empty because their image is at another size.
    """

    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    channels: dict[int, tuple[int, str]] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)

    def add(self, other: BlockReport) -> None:
        """Count `other`'s images too (a later block: first names stay those seen first)."""
        self.sizes.update(other.sizes)
        for kind, (count, first) in other.channels.items():
            seen, name = self.channels.get(kind, (0, first))
            self.channels[kind] = (seen + count, name)


def header(directory: Path, name: str) -> tuple[tuple[int, int], int]:
    """One image's (height, width) and channels (1 or 3), reading only its header."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _open(directory, name) as image:
            return (image.height, image.width), _channels(image)


def decode_block(directory: Path, names: list[str], first: int, target: Target) -> BlockReport:
    """Decode `names` into rows `first`, `first + 1`, ... of `target`, opening each file once."""
    report = BlockReport()
    block = np.zeros((len(names), target.channels, *target.size), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for i, name in enumerate(names):
            with _open(directory, name) as image:
                size, channels = (image.height, image.width), _channels(image)
                report.sizes[size] += 1
                count, seen = report.channels.get(channels, (0, name))
                report.channels[channels] = (count + 1, seen)
                if channels != target.channels:
                    continue  # the caller refuses the dataset, naming an image of the rarer kind
                if size != target.size and not target.resize_all:
                    report.skipped.append(first + i)
                    continue
                block[i] = _pixels(image, name, target.channels, target.size)
    with open(target.dest, "r+b") as out:
        os.pwrite(out.fileno(), block.data, target.offset + first * block[0].nbytes)
    return report


def _channels(image: Image.Image) -> int:
    return 1 if image.mode in _GRAY_MODES else 3


@contextmanager
def _open(directory: Path, name: str) -> Iterator[Image.Image]:
    """The image file `name` of the dataset, its header read; the caller checked its folders and turns
    DecompressionBombWarning into an error (once per block, not per image)."""
    try:
        fd = os.open(directory / name, os.O_RDONLY | _NO_FOLLOW)  # a link in the file's place is refused
    except OSError as exc:
        raise DataFormatError(f"{name} cannot be read ({exc.strerror or exc}): sync the dataset again") from None
    with os.fdopen(fd, "rb") as file:
        try:
            image = Image.open(file, formats=IMAGE_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _bomb(name) from None
        except UnidentifiedImageError:
            raise DataFormatError(
                f"{name} is not a readable image (image folders hold {', '.join(IMAGE_FORMATS[:-1])} or "
                f"{IMAGE_FORMATS[-1]} data, whatever the file's name): convert, replace or delete it at the source"
            ) from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataFormatError(
                f"{name} is not a readable image ({exc}): replace or delete it at the source"
            ) from None
        with image:
            if image.width * image.height > MAX_PIXELS:
                raise _bomb(name)
            yield image


def _bomb(name: str) -> DataFormatError:
    return DataFormatError(
        f"{name} is too large to be a training image (over {MAX_PIXELS} pixels, a possible "
        "decompression bomb): shrink or delete it at the source"
    )


def _pixels(image: Image.Image, name: str, channels: int, size: tuple[int, int]) -> np.ndarray:
    """One opened image as uint8 [C, H, W] at `size`."""
    try:
        if image.format == "JPEG" and image.width * image.height > size[0] * size[1]:
            image.draft("L" if channels == 1 else "RGB", (size[1], size[0]))  # decode at 1/2, 1/4 or 1/8 scale
        image = image.convert("L" if channels == 1 else "RGB")
        if (image.height, image.width) != size:
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataFormatError(f"{name} cannot be decoded ({exc}): replace or delete it at the source") from None
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
