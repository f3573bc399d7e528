"""Memory and time of syncing a large CSV or Parquet table, against pyarrow reading the same file whole.

Writes an N-row x 20-feature float table (integer labels 0-9) as CSV and as Parquet into --work (default:
a temp folder under /tmp), then for each size and format, in alternating rounds, runs in a fresh process:
  - baseline: `pyarrow.csv.read_csv` / `pyarrow.parquet.read_table` of the whole file;
  - trainflow: `trainflow data sync <folder>` into an empty cache (copy, sha256, manifest, the streamed
    conversion to the cached arrays, the checks and the descriptor).
  - trainflow prepare: the conversion alone on that cache (no CLI, no copy, no sha256).
The baseline and prepare also print their own wall and CPU seconds in-process (imports and start left out).
Peak memory is the RSS of the process tree, sampled every 10 ms with psutil; time is the process's wall
time and the CPU seconds (user + system) of its process tree (interpreter start and imports included for both;
under load the CPU seconds are the steadier figure). Prints min/median per variant and the median of
the per-round ratios, and the load average (other work on the machine skews the times).

On a virtual machine whose host backs a guest page only when the guest first touches it, a run that lands on
such pages pays for it (on the 2-core machine of benchmarks/README.md: ~2.7 s of system time a GiB), so the
figures follow the machine's history. `--touch-memory GIB` touches that much memory once before the rounds
(capped at what is available, less 2 GiB), so every variant writes to pages the host already backs.

    .venv/bin/python benchmarks/table_sync.py [--rows 100000,1000000,3000000] [--repeat 3] [--formats csv,parquet]
        [--baseline-src /tmp/base/src]   # also the sync and prepare of that code, alternating round by round
        [--touch-memory 20]   # GiB touched once first
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

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

FEATURES = 20
# In-process figures: wall and CPU seconds (process_time: every thread of the process) of the read or conversion alone.
_TIMED = (
    "t0, c0 = time.perf_counter(), time.process_time(); {}; print(time.perf_counter() - t0, time.process_time() - c0)"
)
BASELINE = {
    "csv": "import pyarrow.csv as c, sys, time; " + _TIMED.format("c.read_csv(sys.argv[1])"),
    "parquet": "import pyarrow.parquet as p, sys, time; " + _TIMED.format("p.read_table(sys.argv[1])"),
}
# The conversion alone, in-process: the synced dataset's arrays and descriptor built again from its cached file.
PREPARE = (
    "import sys, time; from pathlib import Path; from trainflow.datasets import FormatOptions; "
    "from trainflow.datasets.manifest import load_manifest; from trainflow.datasets.prepare import prepare; "
    "d = Path(sys.argv[1]); (d / 'descriptor.json').unlink(); "
    + _TIMED.format("prepare(d, load_manifest(d), FormatOptions())")
)


def write_tables(rows: int, folder: Path) -> dict[str, Path]:
    """t.csv and t.parquet of `rows` rows, each in its own folder, written a block at a time."""
    paths = {"csv": folder / "csv" / "t.csv", "parquet": folder / "parquet" / "t.parquet"}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    schema = pa.schema([*(pa.field(f"f{j}", pa.float32()) for j in range(FEATURES)), pa.field("label", pa.int64())])
    with pa_csv.CSVWriter(paths["csv"], schema) as c, pq.ParquetWriter(paths["parquet"], schema) as p:
        for start in range(0, rows, 200_000):
            n = min(200_000, rows - start)
            x = rng.normal(size=(n, FEATURES)).astype(np.float32)
            columns = [pa.array(x[:, j]) for j in range(FEATURES)] + [pa.array(rng.integers(0, 10, n))]
            batch = pa.record_batch(columns, schema=schema)
            c.write_batch(batch)
            p.write_batch(batch)
    return paths


Run = tuple[float, int, float, int, float, float]  # wall s, peak RSS, printed wall s, peak PSS, CPU s of the tree,
# printed CPU s


def run(argv: list[str], env: dict[str, str]) -> Run:
    """Wall seconds, peak RSS and peak PSS (bytes) of the process tree of `argv`, the wall and CPU seconds it printed,
    and the CPU seconds of the tree (its processes are all reaped by the time it ends: RUSAGE_CHILDREN counts them).

    RSS sums count pages that forked workers share with their parent once per process; PSS splits them.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = psutil.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = peak_pss = 0
    while proc.poll() is None:
        try:
            tree = [p for p in [proc, *proc.children(recursive=True)] if p.is_running()]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
            peak_pss = max(peak_pss, sum(p.memory_full_info().pss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    out = (proc.stdout.read().decode() if proc.stdout else "").split()
    inner = [float(v) for v in out] if len(out) == 2 else [0.0, 0.0]
    return elapsed, peak, inner[0], peak_pss, cpu, inner[1]


Runs = dict[str, list[Run]]


def measure(fmt: str, path: Path, work: Path, repeat: int, baseline_src: Path | None) -> Runs:
    trainflow = str(Path(sys.executable).with_name("trainflow"))
    variants = {"trainflow": str(Path(__file__).resolve().parents[1] / "src")}
    if baseline_src is not None:
        variants = {"before": str(baseline_src), **variants}
    results: Runs = {"pyarrow read": []} | {f"{v} {s}": [] for v in variants for s in ("sync", "prepare")}
    for i in range(repeat):
        results["pyarrow read"].append(run([sys.executable, "-c", BASELINE[fmt], str(path)], dict(os.environ)))
        for variant, src in variants.items():
            home = work / f"home-{i}"
            env = dict(os.environ, TRAINFLOW_HOME=str(home), PYTHONPATH=src)
            sync = [trainflow, "data", "sync", str(path.parent), "--name", "t"]
            results[f"{variant} sync"].append(run(sync, env))
            dataset = str(home / "cache" / "datasets" / "t")
            results[f"{variant} prepare"].append(run([sys.executable, "-c", PREPARE, dataset], env))
            shutil.rmtree(home)
    return results


def report(rows: int, fmt: str, size: int, results: Runs) -> None:
    print(f"\n{rows:,} rows x {FEATURES} features, {fmt} ({size / 1e6:.0f} MB), {len(results['pyarrow read'])} rounds")
    for name, runs in results.items():
        times, peaks, inner = [r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs]
        cpu, inner_cpu = [r[4] for r in runs], [r[5] for r in runs]
        print(
            f"  {name:17s} process min {min(times):6.2f} s median {statistics.median(times):6.2f} s"
            f" | CPU median {statistics.median(cpu):5.2f} s"
            + (
                f" | in-process min {min(inner):5.2f} s median {statistics.median(inner):5.2f} s"
                f" CPU median {statistics.median(inner_cpu):5.2f} s"
                if any(inner)
                else ""
            )
            + f" | peak RSS min {min(peaks) / 2**20:5.0f} MiB median {statistics.median(peaks) / 2**20:5.0f} MiB"
        )
    base, sync, prep = results["pyarrow read"], results["trainflow sync"], results["trainflow prepare"]
    whole = [t[0] / b[0] for t, b in zip(sync, base, strict=True)]
    inner = [p[2] / b[2] for p, b in zip(prep, base, strict=True)]
    cpu = [t[4] / b[4] for t, b in zip(sync, base, strict=True)]
    inner_cpu = [p[5] / b[5] for p, b in zip(prep, base, strict=True)]
    print(
        f"  sync process / pyarrow process: median {statistics.median(whole):.2f}x, min {min(whole):.2f}x; "
        f"prepare / pyarrow read, in-process: median {statistics.median(inner):.2f}x, min {min(inner):.2f}x"
    )
    print(
        f"  sync CPU / pyarrow process CPU: median {statistics.median(cpu):.2f}x, min {min(cpu):.2f}x; "
        f"prepare / pyarrow read, in-process CPU: median {statistics.median(inner_cpu):.2f}x, min {min(inner_cpu):.2f}x"
    )
    if "before sync" in results:
        for step in ("sync", "prepare"):
            pairs = list(zip(results[f"trainflow {step}"], results[f"before {step}"], strict=True))
            ratio = [now[0] / before[0] if step == "sync" else now[2] / before[2] for now, before in pairs]
            cpu = [now[4] / before[4] if step == "sync" else now[5] / before[5] for now, before in pairs]
            print(
                f"  {step} this checkout / before, per round: {' '.join(f'{r:.2f}x' for r in ratio)} "
                f"(median {statistics.median(ratio):.2f}x); CPU {' '.join(f'{r:.2f}x' for r in cpu)} "
                f"(median {statistics.median(cpu):.2f}x)"
            )


def touch_memory(gib: float) -> None:
    """Write to `gib` GiB of fresh memory (at most what is available, less 2 GiB) and free it."""
    usable = max(0.0, min(gib, psutil.virtual_memory().available / 2**30 - 2))
    start = time.perf_counter()
    held = [np.ones(2**30, dtype=np.uint8) for _ in range(int(usable))]  # each its own pages, all held at once
    print(f"touched {len(held)} GiB of memory in {time.perf_counter() - start:.1f} s")
    del held


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000,3000000", help="Comma-separated table sizes.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--work", type=Path, default=None, help="Where the tables go (default: a temp folder).")
    parser.add_argument("--baseline-src", type=Path, default=None, help="The src folder of the code to compare with.")
    parser.add_argument("--touch-memory", type=float, default=0, help="GiB of memory to touch once first.")
    args = parser.parse_args()
    if args.touch_memory:
        touch_memory(args.touch_memory)
    print(f"load average before: {load()} on {os.cpu_count()} CPUs")
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tf-bench-tables-", dir=args.work))
    try:
        for rows in (int(r) for r in args.rows.split(",")):
            paths = write_tables(rows, work / f"rows-{rows}")
            for fmt in args.formats.split(","):
                report(
                    rows, fmt, paths[fmt].stat().st_size, measure(fmt, paths[fmt], work, args.repeat, args.baseline_src)
                )
            shutil.rmtree(work / f"rows-{rows}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
