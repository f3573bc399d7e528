"""First sync of an image-folder dataset: images per second and peak memory, optionally against another checkout.

Writes the mnist-10k digits as PNG class folders (train/<digit>/*.png, test/<digit>/...), repeated to --images
files, then in alternating rounds syncs the folder into an empty cache in a fresh process (`trainflow data sync`,
copy, sha256, manifest, decode into the cached uint8 memmap, descriptor), sampling the RSS of the process tree
(workers included) every 10 ms. With --baseline-src (the `src` folder of another checkout, e.g. from
`git archive <commit> src | tar -x -C /tmp/base`), the same sync with that code runs in each round too.

    .venv/bin/python benchmarks/image_sync.py [--images 10000,100000] [--repeat 3] [--baseline-src /tmp/base/src]
        [--folders /tmp/tf-image-folders]

With --folders, the generated folders are kept there (png-<count>) and reused by later runs: writing 100,000
PNGs takes minutes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from table_sync import run

from trainflow.datasets import load_split

SYNC = "import sys; from trainflow.cli.main import main; sys.argv[0] = 'trainflow'; main()"


def write_folders(data: Path, count: int, dest: Path) -> Path:
    done = dest / ".complete"
    if done.exists():
        return dest
    shutil.rmtree(dest, ignore_errors=True)  # a folder left half-written by an interrupted run
    train, test = load_split(data, "train"), load_split(data, "test")
    for i in range(count):  # one in five held out as test images
        split, part = ("test", test) if i % 5 == 0 else ("train", train)
        image, label = part.images[i % len(part.labels)], part.labels[i % len(part.labels)]
        folder = dest / split / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(image).reshape(28, 28), "L").save(folder / f"{i:06d}.png")
    done.touch()  # hidden: a sync leaves it out
    return dest


def _children_cpu() -> float:
    """User and system seconds of every finished child process so far (a sync's workers included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/mnist-10k")
    parser.add_argument("--images", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--folders", type=Path, default=None, help="keep the generated folders here, for reuse")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    work = Path(tempfile.mkdtemp(prefix="tf-bench-images-"))
    variants = {"this checkout": str(Path(__file__).resolve().parents[1] / "src")}
    if args.baseline_src:
        variants = {"baseline": str(args.baseline_src), **variants}
    try:
        for count in (int(n) for n in args.images.split(",")):
            source = write_folders(args.data, count, (args.folders or work) / f"png-{count}")
            results: dict[str, list[tuple[float, int, float, int]]] = {v: [] for v in variants}
            cpu: dict[str, list[float]] = {v: [] for v in variants}
            for i in range(args.repeat):
                for variant, src in variants.items():
                    home = work / f"home-{count}-{variant}-{i}"  # kept to the end: see image_sync_split.py's docstring
                    env = dict(os.environ, TRAINFLOW_HOME=str(home), PYTHONPATH=src)
                    before = _children_cpu()
                    results[variant].append(run([sys.executable, "-c", SYNC, "data", "sync", str(source)], env))
                    cpu[variant].append(_children_cpu() - before)
            print(f"\n{count:,} PNGs of 28x28, first sync, {args.repeat} rounds")
            for variant, runs in results.items():
                times, peaks, pss = [r[0] for r in runs], [r[1] for r in runs], [r[3] for r in runs]
                print(
                    f"  {variant:14s} min {min(times):6.2f} s median {statistics.median(times):6.2f} s "
                    f"({count / statistics.median(times):,.0f} images/s) | peak of the tree: RSS max "
                    f"{max(peaks) / 2**20:5.0f} MiB, PSS max {max(pss) / 2**20:5.0f} MiB | CPU (user+sys of the tree) "
                    f"median {statistics.median(cpu[variant]):6.2f} s"
                )
            if "baseline" in results:
                ratio = [b[0] / t[0] for b, t in zip(results["baseline"], results["this checkout"], strict=True)]
                per_round = " ".join(f"{r:.2f}" for r in ratio)
                print(f"  throughput this / baseline: per round {per_round}, median {statistics.median(ratio):.2f}x")
                cpu_ratio = [b / t for b, t in zip(cpu["baseline"], cpu["this checkout"], strict=True)]
                print(f"  CPU baseline / this: per-round median {statistics.median(cpu_ratio):.2f}x")
            if args.folders is None:
                shutil.rmtree(source)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
