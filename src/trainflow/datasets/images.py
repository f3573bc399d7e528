"""Image-folder datasets (train/<class>/*.png|jpg, test/<class>/...): decoded once into a uint8 [N, C, H, W] array."""

from __future__ import annotations

import multiprocessing
import os
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from trainflow.cores import usable_cores
from trainflow.datasets.arrays import Built, check_space
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.formats import IMAGE_FORMATS, IMAGE_SUFFIXES, FormatOptions
from trainflow.datasets.layout import cached_path

MAX_PIXELS = 1 << 25  # 32 Mpx per image: more is a decompression bomb, not a training example
_FILE = re.compile(r"^(train|test)/([^/]+)/[^/]+\Z")
_BLOCK = 256  # images per decoding task
_PROCESS_MIN = 2048  # images from which decoding runs in processes
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclass(frozen=True)
class _Header:
    name: str
    size: tuple[int, int]  # (height, width)
    channels: int


def build_images(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    splits = _class_files(names)
    classes = tuple(sorted(splits["train"]))
    _check_classes(splits)
    files = {s: [(n, classes.index(c)) for c in classes for n in splits[s][c]] for s in ("train", "test")}
    every = [n for s in files.values() for n, _ in s]
    with _pool(len(every)) as pool:
        blocks = [every[i : i + _BLOCK] for i in range(0, len(every), _BLOCK)]
        headers = [h for block in pool.map(_headers, [directory] * len(blocks), blocks) for h in block]
    channels = _channels(headers)
    size = options.image_size or Counter(h.size for h in headers).most_common(1)[0][0]
    built: dict[str, str | Path] = {}
    for split, items in files.items():
        built[f"x_{split}"] = _decode_all(directory, [n for n, _ in items], channels, size, work / f"x_{split}.npy")
        labels = np.fromiter((label for _, label in items), dtype=np.int64, count=len(items))
        np.save(work / f"y_{split}.npy", labels)
        built[f"y_{split}"] = work / f"y_{split}.npy"
    return Built(built, classes)


def _class_files(names: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    splits: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    others: dict[tuple[str, str], str] = {}
    for name in sorted(names):
        match = _FILE.match(name)
        if not match:
            continue
        split, cls = match.group(1), match.group(2)
        if name.lower().endswith(IMAGE_SUFFIXES):
            splits[split].setdefault(cls, []).append(name)
        else:
            others.setdefault((split, cls), name)
    for (split, cls), name in others.items():
        if cls not in splits[split]:
            raise DataFormatError(
                f"class folder {split}/{cls}/ holds no images (only files like {name}): "
                f"add .png or .jpg images to it or remove it"
            )
    return splits


def _check_classes(splits: dict[str, dict[str, list[str]]]) -> None:
    for split, other in (("train", "test"), ("test", "train")):
        if not splits[split]:
            raise DataFormatError(
                f"the image-folder dataset has no {split}/<class>/ images: add a {split}/ folder "
                "with one subfolder of images per class"
            )
        for cls in sorted(set(splits[other]) - set(splits[split])):
            raise DataFormatError(
                f"class '{cls}' has images in {other}/{cls}/ but {split}/{cls}/ is missing or empty: "
                f"add {split} images of that class, or remove the class from {other}/"
            )


def _workers() -> int:
    return min(8, usable_cores())


def _open(directory: Path, name: str) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(cached_path(directory, name), formats=IMAGE_FORMATS)
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
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise _bomb(name)
    return image


def _bomb(name: str) -> DataFormatError:
    return DataFormatError(
        f"{name} is too large to be a training image (over {MAX_PIXELS} pixels, a possible "
        "decompression bomb): shrink or delete it at the source"
    )


def _headers(directory: Path, names: list[str]) -> list[_Header]:
    return [_header(directory, name) for name in names]


def _header(directory: Path, name: str) -> _Header:
    with _open(directory, name) as image:
        return _Header(name, (image.height, image.width), 1 if image.mode in _GRAY_MODES else 3)


def _channels(headers: list[_Header]) -> int:
    counts = Counter(h.channels for h in headers)
    if len(counts) > 1:
        common = counts.most_common(1)[0][0]
        odd = next(h for h in headers if h.channels != common)
        kinds = {1: "grayscale", 3: "colour"}
        raise DataFormatError(
            f"{odd.name} is {kinds[odd.channels]} but most images are {kinds[common]}: "
            f"convert it (or the others) so that every image has the same channels"
        )
    return headers[0].channels


def _decode_all(directory: Path, names: list[str], channels: int, size: tuple[int, int], dest: Path) -> Path:
    """Decode every image into the .npy file `dest`, a block of images per task, each block written in place."""
    shape = (len(names), channels, *size)
    check_space(dest.parent, int(np.prod(shape)), f"{len(names)} images of {size[0]}x{size[1]}")
    with open(dest, "wb") as out:
        np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": shape})
        offset = out.tell()
        out.truncate(offset + int(np.prod(shape)))
    blocks = [(directory, names[i : i + _BLOCK], i, channels, size, dest, offset) for i in range(0, len(names), _BLOCK)]
    with _pool(len(names)) as pool:
        list(pool.map(_decode_block, *zip(*blocks, strict=True)))
    return dest


def _pool(count: int) -> Executor:
    """Processes for many images (decoding holds the GIL), threads for a few (a process costs more than they do)."""
    if count >= _PROCESS_MIN and "fork" in multiprocessing.get_all_start_methods():
        return ProcessPoolExecutor(max_workers=_workers(), mp_context=multiprocessing.get_context("fork"))
    return ThreadPoolExecutor(max_workers=_workers())


def _decode_block(
    directory: Path, names: list[str], first: int, channels: int, size: tuple[int, int], dest: Path, offset: int
) -> None:
    block = np.empty((len(names), channels, *size), dtype=np.uint8)
    for i, name in enumerate(names):
        block[i] = _pixels(directory, name, channels, size)
    with open(dest, "r+b") as out:
        os.pwrite(out.fileno(), block.data, offset + first * block[0].nbytes)


def _pixels(directory: Path, name: str, channels: int, size: tuple[int, int]) -> np.ndarray:
    """One image as uint8 [C, H, W] at `size`."""
    with _open(directory, name) as image:
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
