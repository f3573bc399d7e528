"""Image folders against IDX: the first sync's decode cost, and read throughput of the cached arrays.

Writes the mnist-10k images twice, as PNG class folders (train/<digit>/*.png, test/<digit>/...) and
as gzipped IDX files, then in the same run, from local sources:
  - first sync of each into an empty cache (copy, hash, and for the folders: decode every PNG once
    into a uint8 memmap), `--repeat` times, and the warm sync after it;
  - read throughput of `load_dataset(...).train` for each: shuffled batches of 100 turned into float
    tensors scaled to [0, 1], as the training loop reads them, over `--epochs` passes.
Prints medians and ratios (folders / IDX); the machine's load average says how busy it was.

    .venv/bin/python benchmarks/data_formats.py [--data ../shared/data/mnist-10k] [--repeat 5] [--epochs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from trainflow.datasets import DatasetCache, FormatOptions, load_dataset, load_split, write_idx
from trainflow.datasets.manifest import load_manifest
from trainflow.datasets.prepare import prepare


def write_sources(data: Path, work: Path) -> tuple[Path, Path]:
    folders, idx = work / "folders", work / "idx"
    idx.mkdir(parents=True)
    for split, stem in (("train", "train"), ("test", "t10k")):
        part = load_split(data, split)
        images, labels = np.asarray(part.images), np.asarray(part.labels)
        write_idx(idx / f"{stem}-images-idx3-ubyte.gz", images)
        write_idx(idx / f"{stem}-labels-idx1-ubyte.gz", labels)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = folders / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "L").save(folder / f"{i:05d}.png")
    return folders, idx


def sync_times(source: Path, work: Path, repeat: int) -> tuple[float, float]:
    cold, warm = [], []
    for i in range(repeat):
        cache = DatasetCache(work / f"cache-{source.name}-{i}")
        start = time.perf_counter()
        cache.ensure(str(source), "d")
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        cache.ensure(str(source), "d")
        warm.append(time.perf_counter() - start)
    return statistics.median(cold), statistics.median(warm)


def prepare_time(directory: Path, repeat: int) -> float:
    """The decode-and-describe part of a first sync alone: rebuild the cached dataset's arrays."""
    manifest = load_manifest(directory)
    assert manifest is not None
    times = []
    for _ in range(repeat):
        (directory / "descriptor.json").unlink()
        start = time.perf_counter()
        prepare(directory, manifest, FormatOptions())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_rate(directory: Path, epochs: int, batch: int = 100) -> float:
    """Examples per second read as shuffled float batches from the cached memmap."""
    train = load_dataset(directory).train
    rng = np.random.default_rng(0)
    n = len(train)
    np.asarray(train.images).sum()  # fault the pages in first: both arrays are read from memory
    start = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(n)
        for lo in range(0, n, batch):
            idx = np.sort(order[lo : lo + batch])
            torch.from_numpy(np.ascontiguousarray(train.images[idx])).float().div_(255.0)
            torch.from_numpy(train.labels[idx].astype(np.int64))
    return epochs * n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/mnist-10k")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tf-bench-formats-"))
    try:
        folders, idx = write_sources(args.data, work)
        count = sum(1 for _ in folders.rglob("*.png"))
        print(
            f"{count} images of 28x28 as PNG folders ({sum(p.stat().st_size for p in folders.rglob('*.png')) >> 10} KiB) "
            f"and as IDX; load average {os.getloadavg()[0]:.1f}"
        )
        cold_f, warm_f = sync_times(folders, work, args.repeat)
        cold_i, warm_i = sync_times(idx, work, args.repeat)
        print(
            f"first sync: folders {cold_f:.2f} s ({count / cold_f:.0f} images/s), IDX {cold_i:.2f} s, "
            f"ratio {cold_f / cold_i:.1f}x"
        )
        decode = prepare_time(work / "cache-folders-0" / "d", args.repeat)
        print(f"of which decoding {count} PNGs into the cached memmap: {decode:.2f} s ({count / decode:.0f} images/s)")
        print(f"warm sync:  folders {warm_f:.2f} s, IDX {warm_i:.2f} s")
        rates = {name: [] for name in ("folders", "idx")}
        for _ in range(args.repeat):  # alternate, so load from other work hits both alike
            rates["folders"].append(read_rate(work / "cache-folders-0" / "d", args.epochs))
            rates["idx"].append(read_rate(work / "cache-idx-0" / "d", args.epochs))
        r_f, r_i = statistics.median(rates["folders"]), statistics.median(rates["idx"])
        print(
            f"read (shuffled batches of 100 -> float tensors): folders {r_f:,.0f} ex/s, IDX {r_i:,.0f} ex/s, "
            f"IDX / folders {r_i / r_f:.2f}x; load average {os.getloadavg()[0]:.1f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
