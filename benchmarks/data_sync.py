"""Cold and warm dataset sync from a local S3 server, against plain boto3 `download_file`.

Starts moto's S3 server on loopback, uploads the dataset, then alternates, in the same run:
  - baseline: `download_file` of each object with one boto3 client, built before timing;
  - cold:     `DatasetCache.ensure` into an empty cache (list, download hashing as bytes arrive, manifest);
  - warm:     `DatasetCache.ensure` again with nothing changed (list, verify checksums, no download);
  - two-pass: `download_file` then a separate sha256 pass over each file (how a cold sync worked before
    it hashed while downloading), for reference.
Prints medians, the median of the per-round cold / boto3 ratios, and the load average around the run
(other work on the machine skews every figure).

    .venv/bin/python benchmarks/data_sync.py [--data ../shared/data/mnist-10k] [--repeat 15] [--large-mb 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from servers import AWS_TEST_ENV, start_moto, stop  # noqa: E402

from trainflow.datasets import DatasetCache, write_synthetic  # noqa: E402
from trainflow.datasets.manifest import sha256_file  # noqa: E402
from trainflow.storage import StorageOptions, mirror_dir  # noqa: E402


def plain_boto3(client: Any, bucket: str, keys: list[str], dest: Path, hash_after: bool = False) -> int:
    total = 0
    for key in keys:
        target = dest / key.rsplit("/", 1)[-1]
        client.download_file(bucket, key, str(target))
        if hash_after:
            sha256_file(target)
        total += target.stat().st_size
    return total


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(endpoint: str, data: Path, url: str, work: Path, repeat: int) -> None:
    import boto3

    mirror_dir(data, url, StorageOptions(endpoint_url=endpoint))
    bucket, prefix = url[5:].split("/", 1)
    files = sorted(p for p in data.iterdir() if p.is_file())
    keys = [f"{prefix}{p.name}" for p in files]
    size = sum(p.stat().st_size for p in files)
    # The baseline's client is built once, outside the timings, as trainflow's is (per process).
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    base, cold, warm, two_pass, warm_bytes = [], [], [], [], []
    options = StorageOptions(endpoint_url=endpoint)
    for i in range(repeat):
        dest = work / f"plain-{i}"
        dest.mkdir()
        base.append(timed(partial(plain_boto3, client, bucket, keys, dest)))
        shutil.rmtree(dest)
        dest.mkdir()
        two_pass.append(timed(partial(plain_boto3, client, bucket, keys, dest, hash_after=True)))
        shutil.rmtree(dest)

        cache = DatasetCache(work / f"cache-{i}", options)
        cold.append(timed(partial(cache.ensure, url, "data")))
        warm.append(timed(partial(cache.ensure, url, "data")))
        warm_bytes.append(cache.ensure(url, "data").bytes_downloaded)
        shutil.rmtree(work / f"cache-{i}")
    b, c, w, t = (statistics.median(x) for x in (base, cold, warm, two_pass))
    per_round = statistics.median(ci / bi for ci, bi in zip(cold, base, strict=True))
    print(f"\n{data.name}: {len(keys)} objects, {size / 1e6:.2f} MB, {repeat} runs, medians")
    print(f"  plain boto3 download_file:     {b * 1000:8.1f} ms")
    print(f"  boto3 + separate sha256 pass:  {t * 1000:8.1f} ms   two-pass / boto3 = {t / b:.2f}x")
    print(
        f"  trainflow cold sync:           {c * 1000:8.1f} ms   cold / boto3 = {c / b:.2f}x "
        f"(per-round median {per_round:.2f}x; goal <= 1.2x)"
    )
    print(f"  trainflow warm sync:           {w * 1000:8.1f} ms   cold / warm  = {c / w:.1f}x (goal >= 20x)")
    print(f"  bytes downloaded by warm syncs: {sum(warm_bytes)}")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "mnist-10k")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--large-mb", type=int, default=64, help="Also sync this many MB of random data (0: skip).")
    parser.add_argument("--large-only", action="store_true", help="Skip the small dataset.")
    args = parser.parse_args()
    print(f"load average before: {load()} on {os.cpu_count()} CPUs")
    work = Path(tempfile.mkdtemp(prefix="tf-bench-sync-"))
    data = args.data if args.data.is_dir() else write_synthetic(work / "synthetic", train=8000, test=2000)
    os.environ.update(AWS_TEST_ENV)
    proc, endpoint = start_moto()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        if not args.large_only:
            measure(endpoint, data, "s3://bench/data/mnist/", work, args.repeat)
        if args.large_mb:
            large = work / "random-large"
            large.mkdir()
            for i in range(4):  # incompressible, so the transfer is what it says
                (large / f"part-{i}.bin").write_bytes(os.urandom(args.large_mb * (1 << 20) // 4))
            measure(
                endpoint,
                large,
                "s3://bench/data/large/",
                work,
                args.repeat if args.large_only else max(5, args.repeat // 3),
            )
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
