"""Image-folder datasets (train/<class>/*.png|jpg, test/<class>/...): decoded once into a uint8 [N, C, H, W] array."""

from __future__ import annotations

import gc
import multiprocessing
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from trainflow.cores import usable_cores
from trainflow.datasets.arrays import Built, check_space
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.formats import IMAGE_SUFFIXES, FormatOptions
from trainflow.datasets.image_decode import BlockReport, Target, decode_block, header
from trainflow.datasets.layout import cached_path

_FILE = re.compile(r"^(train|test)/([^/]+)/[^/]+\Z")
_BLOCK = 256  # images per decoding task
_PROCESS_MIN = 2048  # images from which decoding runs in processes
_KINDS = {1: "grayscale", 3: "colour"}


def build_images(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    """Decode the class folders into x_train.npy and x_test.npy, opening each image once where sizes agree.

    The arrays are built at the declared size, else at the first image's size, which is almost always the
    most common one; when it is not, every image is decoded again at the most common size.
    """
    splits = _class_files(names)
    classes = tuple(sorted(splits["train"]))
    _check_classes(splits)
    for split, by_class in splits.items():
        for cls in by_class:
            cached_path(directory, f"{split}/{cls}")  # refuses a link on the way, once per folder
    # Names only, class after class (a (name, label) pair per file was ~64 bytes more a file); labels by counts.
    names_of = {s: [n for c in classes for n in splits[s][c]] for s in ("train", "test")}
    counts = {s: [len(splits[s][c]) for c in classes] for s in ("train", "test")}
    del splits
    first_size, channels = header(directory, names_of["train"][0])
    size = options.image_size or first_size
    built: dict[str, str | Path] = {}
    targets: dict[str, Target] = {}
    for split, items in names_of.items():
        targets[split] = _array_file(
            work / f"x_{split}.npy", len(items), channels, size, options.image_size is not None
        )
        built[f"x_{split}"] = targets[split].dest
        np.save(work / f"y_{split}.npy", np.repeat(np.arange(len(classes), dtype=np.int64), counts[split]))
        built[f"y_{split}"] = work / f"y_{split}.npy"
    report, skipped = _decode(directory, names_of, targets)
    _check_channels(report)
    common = size if options.image_size else report.sizes.most_common(1)[0][0]
    if common != size:  # the first image was the odd one: every image again, at the most common size
        targets = {s: _array_file(t.dest, len(names_of[s]), channels, common, True) for s, t in targets.items()}
        _decode(directory, names_of, targets)
    else:  # the few images at other sizes, resized into their rows
        for split, rows in skipped.items():
            _decode_rows(directory, names_of[split], rows, targets[split])
    return Built(built, classes)


def _array_file(dest: Path, count: int, channels: int, size: tuple[int, int], resize_all: bool) -> Target:
    """An empty uint8 .npy file of `count` images, and where its rows start."""
    shape = (count, channels, *size)
    check_space(dest.parent, int(np.prod(shape)), f"{count} images of {size[0]}x{size[1]}")
    with open(dest, "wb") as out:
        np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": shape})
        offset = out.tell()
        out.truncate(offset + int(np.prod(shape)))
    return Target(dest, offset, channels, size, resize_all)


def _decode(
    directory: Path, names: dict[str, list[str]], targets: dict[str, Target]
) -> tuple[BlockReport, dict[str, list[int]]]:
    """Decode every split into its target, a block per task: what the blocks saw (in file order), and per split
    the rows left empty because their image is at another size."""
    tasks = [(s, i) for s in ("train", "test") for i in range(0, len(names[s]), _BLOCK)]
    report, skipped = BlockReport(), {s: list[int]() for s in names}
    with _pool(sum(len(n) for n in names.values())) as pool:
        blocks = pool.map(
            decode_block,
            [directory] * len(tasks),
            [names[s][i : i + _BLOCK] for s, i in tasks],
            [i for _, i in tasks],
            [targets[s] for s, _ in tasks],
        )
        for (split, _), block in zip(tasks, blocks, strict=True):
            report.add(block)
            skipped[split].extend(block.skipped)
    return report, skipped


def _decode_rows(directory: Path, names: list[str], rows: list[int], target: Target) -> None:
    """Decode the rows the first pass left empty (images at another size), resized to the array's size."""
    resized = Target(target.dest, target.offset, target.channels, target.size, True)
    for row in rows:
        decode_block(directory, [names[row]], row, resized)


def _check_channels(report: BlockReport) -> None:
    if len(report.channels) > 1:
        common = max(report.channels, key=lambda kind: report.channels[kind][0])
        odd = next(kind for kind in report.channels if kind != common)
        raise DataFormatError(
            f"{report.channels[odd][1]} is {_KINDS[odd]} but most images are {_KINDS[common]}: "
            f"convert it (or the others) so that every image has the same channels"
        )


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


@contextmanager
def _pool(count: int) -> Iterator[Executor]:
    """Processes for many images (decoding holds the GIL), threads for a few (a process costs more than they do).

    The parent's objects are frozen while forked workers run: a worker's garbage collection would otherwise
    write to every tracked object it inherited (the manifest's entries, the names), copying their pages.
    """
    if count >= _PROCESS_MIN and "fork" in multiprocessing.get_all_start_methods():
        gc.freeze()
        try:
            with ProcessPoolExecutor(max_workers=_workers(), mp_context=multiprocessing.get_context("fork")) as pool:
                yield pool
        finally:
            gc.unfreeze()
    else:
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            yield pool
