"""The local runner's fan-out: per-item overhead and the runner's memory, from 100 to 1,000 items.

A listing step (a `Call`) returns N items; a second `Call` fans out over them (`for_each=output(...)`, the
default parallelism: this machine's cores), each item calling the trivial chain_steps:step. Timed from submit to
Succeeded; the runner's peak RSS is sampled while it runs. Beside it, in the same run, the same `trainflow step
call` run back to back with plain `subprocess.run` (what one item costs without the runner), so the runner's own
share per item is the difference. Goal: per-item time and the runner's memory flat from 100 to 1,000 items.

    .venv/bin/python benchmarks/pipeline.py fanout [--repeat 1]
    .venv/bin/python benchmarks/fan_out.py [--items 100 1000]
"""

from __future__ import annotations

import argparse
import compileall
import os
import tempfile
import time
from pathlib import Path

import psutil

import trainflow
from trainflow.cores import usable_cores
from trainflow.pipelines import ITEM, Call, Param, Pipeline, output, param
from trainflow.workflows.backend import FINISHED
from trainflow.workflows.local.backend import LocalBackend
from trainflow.workflows.local.state import StateStore

HERE = Path(__file__).resolve().parent
SIZES = (100, 250, 500, 1000)
BARE_CALLS = 20


def fan_out_pipeline() -> Pipeline:
    return Pipeline(
        name="bench-fan-out",
        params=(Param("n", 100, type="int"),),
        steps=(
            Call(
                name="list", function="fan_out_steps:items", inputs={"n": param("n")}, outputs=("items",), cache=False
            ),
            Call(
                name="each",
                function="chain_steps:step",
                for_each=output("list", "items"),
                inputs={"i": ITEM},
                outputs=("i",),
                cache=False,
            ),
        ),
    )


def run_once(home: Path, items: int) -> tuple[float, int]:
    """Seconds from submit to Succeeded, and the runner's peak RSS in bytes."""
    backend = LocalBackend(home)
    start = time.perf_counter()
    info = backend.submit(fan_out_pipeline(), {"n": str(items)}, python_path=[str(HERE / "peers")])
    state, peak = StateStore(home / "trainflow.db"), 0
    while (status := state.status(info.name)) not in FINISHED:
        pid, _ = state.runner(info.name)
        try:
            peak = max(peak, psutil.Process(pid).memory_info().rss) if pid else peak
        except psutil.Error:
            pass
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    done = backend.get(info.name)
    assert status == "Succeeded" and len(done.steps) == items + 1, done.message
    backend.delete(info.name)
    return elapsed, peak


def bare_per_call(home: Path) -> float:
    """One item's `trainflow step call`, run back to back without the runner (its outputs written as under it)."""
    from pipeline import bare_per_step  # imported here: pipeline.py imports this module

    return bare_per_step(home, BARE_CALLS)


def bench_fanout(args: argparse.Namespace) -> None:
    """Per-item time and the runner's peak memory for fan-outs of 100 to 1,000 items (goal: flat)."""
    compileall.compile_dir(Path(trainflow.__file__).parent, quiet=1)
    sizes = getattr(args, "items", None) or SIZES
    cores = usable_cores()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        bare = bare_per_call(home)
        rows = []
        for items in sizes:
            runs = [run_once(home, items) for _ in range(max(1, getattr(args, "repeat", 1)))]
            elapsed = min(r[0] for r in runs)
            rows.append((items, elapsed, max(r[1] for r in runs)))
    print(f"fan-out of a trivial Call over a listing step's output, {cores} at once (this machine's cores)")
    print(
        f"  bare `trainflow step call` back to back: {bare * 1000:.0f} ms per call; at {cores} at once the floor is "
        f"{bare * 1000 / cores:.0f} ms per item"
    )
    first = rows[0]
    for items, elapsed, rss in rows:
        per_item = elapsed / items
        print(
            f"  {items:>5} items: {elapsed:6.1f} s, {per_item * 1000:5.0f} ms per item "
            f"({per_item * cores / bare:.2f}x the floor; {per_item / (first[1] / first[0]):.2f}x per item at "
            f"{first[0]}), runner peak RSS {rss / 2**20:.0f} MiB ({rss / first[2]:.2f}x at {first[0]})"
        )
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--repeat", type=int, default=1)
    bench_fanout(parser.parse_args())


if __name__ == "__main__":
    main()
