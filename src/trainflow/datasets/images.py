"""Image-folder datasets (train/<class>/*.png|jpg, test/<class>/...): decoded once into a uint8 [N, C, H, W] array."""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import re
from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from trainflow.cores import usable_cores
from trainflow.datasets.arrays import Built, check_space
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.formats import IMAGE_SUFFIXES, FormatOptions
from trainflow.datasets.heap import return_free_memory
from trainflow.datasets.image_decode import BlockReport, Target, decode_block, header
from trainflow.datasets.layout import cached_path

_FILE = re.compile(r"^(train|test)/([^/]+)/[^/]+\Z")
_BLOCK = 256  # images per decoding task
_PROCESS_MIN = 2048  # images from which decoding runs in processes
_KINDS = {1: "grayscale", 3: "colour"}


def build_images(directory: Path, names: Sequence[str], options: FormatOptions, work: Path) -> Built:
    """Decode the class folders into x_train.npy and x_test.npy, opening each image once where sizes agree.

    `names` are the dataset's files, sorted. The arrays are built at the declared size, else at the first
    image's size, which is almost always the most common one; when it is not, every image is decoded again
    at the most common size. Images are kept as positions in `names` (4 bytes each), never as a list of names.
    """
    splits = _class_files(names)
    classes = tuple(sorted(splits["train"]))
    _check_classes(splits)
    for split, by_class in splits.items():
        for cls in by_class:
            cached_path(directory, f"{split}/{cls}")  # refuses a link on the way, once per folder
    # Class after class; labels from the counts.
    rows = {s: _Images(names, [splits[s][c] for c in classes]) for s in ("train", "test")}
    counts = {s: [len(splits[s][c]) for c in classes] for s in ("train", "test")}
    del splits
    first_size, channels = header(directory, rows["train"][0])
    size = options.image_size or first_size
    built: dict[str, str | Path] = {}
    targets: dict[str, Target] = {}
    for split, items in rows.items():
        targets[split] = _array_file(
            work / f"x_{split}.npy", len(items), channels, size, options.image_size is not None
        )
        built[f"x_{split}"] = targets[split].dest
        np.save(work / f"y_{split}.npy", np.repeat(np.arange(len(classes), dtype=np.int64), counts[split]))
        built[f"y_{split}"] = work / f"y_{split}.npy"
    report, skipped = _decode(directory, rows, targets)
    _check_channels(report)
    common = size if options.image_size else report.sizes.most_common(1)[0][0]
    if common != size:  # the first image was the odd one: every image again, at the most common size
        targets = {s: _array_file(t.dest, len(rows[s]), channels, common, True) for s, t in targets.items()}
        _decode(directory, rows, targets)
    else:  # the few images at other sizes, resized into their rows
        for split, skipped_rows in skipped.items():
            _decode_rows(directory, rows[split], skipped_rows, targets[split])
    return Built(built, classes)


class _Images:
    """A split's images in array order, as positions in the dataset's sorted names."""

    def __init__(self, names: Sequence[str], positions: list[array[int]]) -> None:
        self._names = names
        self._positions = np.concatenate(
            [np.frombuffer(p, dtype=np.int32) for p in positions] or [np.empty(0, np.int32)]
        )

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, row: int) -> str:
        return self._names[int(self._positions[row])]

    def block(self, first: int) -> list[str]:
        """The names of rows `first` to `first + _BLOCK`, for one decoding task."""
        return [self._names[int(p)] for p in self._positions[first : first + _BLOCK]]


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
    directory: Path, images: dict[str, _Images], targets: dict[str, Target]
) -> tuple[BlockReport, dict[str, list[int]]]:
    """Decode every split into its target, a block per task: what the blocks saw (in file order), and per split
    the rows left empty because their image is at another size.

    A few blocks are in flight at a time, each task carrying its block's names: the workers never read
    the parent's per-file data, and the parent never holds every block's names at once.
    """
    tasks = iter([(s, i) for s in ("train", "test") for i in range(0, len(images[s]), _BLOCK)])
    report, skipped = BlockReport(), {s: list[int]() for s in images}
    workers = _workers()
    with _pool(sum(len(n) for n in images.values())) as pool:
        running: deque[tuple[str, Future[BlockReport]]] = deque()
        while True:
            for split, first in itertools.islice(tasks, 2 * workers - len(running)):
                block = images[split].block(first)
                running.append((split, pool.submit(decode_block, directory, block, first, targets[split])))
            if not running:
                break
            split, future = running.popleft()  # in order: the report's first names are the first files'
            block_report = future.result()
            report.add(block_report)
            skipped[split].extend(block_report.skipped)
    return report, skipped


def _decode_rows(directory: Path, images: _Images, rows: list[int], target: Target) -> None:
    """Decode the rows the first pass left empty (images at another size), resized to the array's size."""
    resized = Target(target.dest, target.offset, target.channels, target.size, True)
    for row in rows:
        decode_block(directory, [images[row]], row, resized)


def _check_channels(report: BlockReport) -> None:
    if len(report.channels) > 1:
        common = max(report.channels, key=lambda kind: report.channels[kind][0])
        odd = next(kind for kind in report.channels if kind != common)
        raise DataFormatError(
            f"{report.channels[odd][1]} is {_KINDS[odd]} but most images are {_KINDS[common]}: "
            f"convert it (or the others) so that every image has the same channels"
        )


def _class_files(names: Sequence[str]) -> dict[str, dict[str, array[int]]]:
    """Per split and class, the positions of its images in the sorted `names` (in their order)."""
    splits: dict[str, dict[str, array[int]]] = {"train": {}, "test": {}}
    others: dict[tuple[str, str], str] = {}
    for position, name in enumerate(names):
        match = _FILE.match(name)
        if not match:
            continue
        split, cls = match.group(1), match.group(2)
        if name.lower().endswith(IMAGE_SUFFIXES):
            splits[split].setdefault(cls, array("i")).append(position)
        else:
            others.setdefault((split, cls), name)
    for (split, cls), name in others.items():
        if cls not in splits[split]:
            raise DataFormatError(
                f"class folder {split}/{cls}/ holds no images (only files like {name}): "
                f"add .png or .jpg images to it or remove it"
            )
    return splits


def _check_classes(splits: dict[str, dict[str, array[int]]]) -> None:
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
        return_free_memory()  # before the fork: pages the workers would otherwise map and count as theirs
        gc.freeze()
        try:
            with ProcessPoolExecutor(max_workers=_workers(), mp_context=multiprocessing.get_context("fork")) as pool:
                yield pool
        finally:
            gc.unfreeze()
    else:
        with ThreadPoolExecutor(max_workers=_workers()) as pool:
            yield pool
