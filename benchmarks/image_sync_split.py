"""Where a first image-folder sync spends its CPU and memory: main thread, copy threads, decode workers, apart.

In alternating rounds, for each `src` folder given (the first is the baseline: `git archive <commit> src | tar -x
-C /tmp/base`), syncs the PNG folder `--folders`/png-<count> (written by `image_sync.py --folders`) into an empty
cache in a fresh process, sampling every 50 ms the CPU of each of its threads (/proc/<pid>/task) and the PSS of
the sync process and of its workers (a sample during which a worker started or ended is left out: the pages it
shares would count in full in one and in part in the other). Prints per round and the medians, then each variant's
per-round ratios to the first.

    .venv/bin/python benchmarks/image_sync_split.py /tmp/base/src src [--images 10000] [--repeat 3]
        [--folders /tmp/tf-image-folders]

Every run's cache is kept until the end: on an ext4 file system without a journal (this machine's), a file
created within ~5 minutes of many deletions in the same block group pays for skipping each recently deleted inode
(`recently_deleted` in the kernel's inode allocator), so a run that follows the deletion of the one before it took
up to 3x the system time of the same run on fresh inodes: the order of the runs, not their code, set the copies' CPU.
Leave 5 minutes between invocations, or pass `--cache-root` on another file system.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

SYNC = "import sys; from trainflow.cli.main import main; sys.argv[0] = 'trainflow'; main()"
FIELDS = ("main thread", "copy threads", "workers", "tree CPU", "process PSS", "workers PSS", "tree PSS")
_TICK = os.sysconf("SC_CLK_TCK")


def _thread_cpu(pid: int, seen: dict[int, float]) -> None:
    """Record the CPU seconds of each thread of `pid` so far (a thread that ended keeps its last value)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        seen[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICK


def one_sync(src: str, source: Path, root: Path) -> tuple[float, ...]:
    home = Path(tempfile.mkdtemp(prefix="tf-bench-split-", dir=root))
    env = dict(os.environ, TRAINFLOW_HOME=str(home), PYTHONPATH=src)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = psutil.Popen([sys.executable, "-c", SYNC, "data", "sync", str(source)], env=env, stdout=subprocess.DEVNULL)
    threads: dict[int, float] = {}
    own = kids = tree = 0
    while proc.poll() is None:
        try:
            _thread_cpu(proc.pid, threads)
            running = proc.children(recursive=True)
            pss = proc.memory_full_info().pss
            workers = sum(c.memory_full_info().pss for c in running)
            if {c.pid for c in proc.children(recursive=True)} != {c.pid for c in running}:
                continue  # a worker forked or ended meanwhile: the pages it shares were counted in full and in part
        except (OSError, psutil.Error):
            continue
        own, kids, tree = max(own, pss), max(kids, workers), max(tree, pss + workers)
        time.sleep(0.05)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"the sync with {src} failed")
    total = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    main = threads.get(proc.pid, 0.0)
    copies = sum(cpu for tid, cpu in threads.items() if tid != proc.pid)
    return main, copies, total - main - copies, total, own / 2**20, kids / 2**20, tree / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="+", type=Path, help="src folders: the first is the baseline")
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--folders", type=Path, default=Path("/tmp/tf-image-folders"))
    parser.add_argument("--cache-root", type=Path, default=None, help="Where the runs' caches go (default: /tmp).")
    args = parser.parse_args()
    source = args.folders / f"png-{args.images}"
    if not (source / ".complete").exists():
        raise SystemExit(
            f"no {source}: write it first with image_sync.py --images {args.images} --folders {args.folders}"
        )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    srcs = [str(s.resolve()) for s in args.src]
    runs: dict[str, list[tuple[float, ...]]] = {s: [] for s in srcs}
    root = Path(tempfile.mkdtemp(prefix="tf-bench-split-caches-", dir=args.cache_root))
    try:  # deleted at the end, not run by run: see the module's docstring
        for i in range(args.repeat):
            for src in srcs:
                runs[src].append(one_sync(src, source, root))
                shown = ", ".join(f"{k} {v:.2f}" for k, v in zip(FIELDS, runs[src][-1], strict=True))
                print(f"round {i + 1} {src}: {shown}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{args.images:,} PNGs, first sync, {args.repeat} rounds (CPU in seconds, PSS peaks in MiB)")
    for src, results in runs.items():
        medians = [statistics.median(r[k] for r in results) for k in range(len(FIELDS))]
        print(f"  {src}: medians " + ", ".join(f"{k} {v:.2f}" for k, v in zip(FIELDS, medians, strict=True)))
    for src in srcs[1:]:
        for k, field in enumerate(FIELDS[:4]):
            ratios = [r[k] / b[k] for r, b in zip(runs[src], runs[srcs[0]], strict=True) if b[k]]
            if ratios:
                per_round = " ".join(f"{x:.2f}" for x in ratios)
                print(f"  {field}: {src} / baseline per round {per_round}, median {statistics.median(ratios):.2f}x")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
