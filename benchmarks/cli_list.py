"""CPU time of `trainflow list` / `get` over a long history: N recorded runs, this tree against a baseline tree.

The runs are written into the state directly (as a runner leaves them: finished `model-train` runs, some with a
Cached step, some Failed), then each command runs in a fresh interpreter with one tree or the other first on the
path, both compiled as tests/conftest.py compiles the package. Rounds alternate the trees command by command; the
figure is the CPU time (user + system) the kernel counts for the child, and the ratio the median of the per-round
ratios, so the neighbours' load on a shared machine matters less. Each command's output is compared between the
trees too (`same output`): a faster listing must print the very same bytes.

    mkdir -p /tmp/l-base && git archive 3ddff69 src | tar -x -C /tmp/l-base
    .venv/bin/python benchmarks/cli_list.py --baseline /tmp/l-base/src --runs 1000 --rounds 15
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# `get` names the newest run, which the listing shows first.
COMMANDS: dict[str, list[str]] = {
    "list": ["list"],
    "list -o json": ["list", "-o", "json"],
    "list -o wide": ["list", "-o", "wide"],
    "get NAME": ["get", "model-train-newest"],
    "get NAME -o json": ["get", "model-train-newest", "-o", "json"],
}


def fill_state(home: Path, count: int) -> None:
    """`count` finished `model-train` runs, one an hour, as their runners would have left them.

    The newest is a day and half an hour old: every AGE reads in days and none turns over in the 30 minutes after
    the fill, so the trees' outputs compare byte for byte."""
    from trainflow.pipelines.builtin import PIPELINES
    from trainflow.pipelines.serial import to_dict
    from trainflow.workflows.backend import CACHED, FAILED, SUCCEEDED, StepInfo, WorkflowInfo
    from trainflow.workflows.local.state import StateStore

    pipeline = PIPELINES["model-train"]
    values = pipeline.resolve({})
    spec = {"pipeline": to_dict(pipeline), "python_path": []}
    state, first = StateStore(home / "trainflow.db"), time.time() - 86400 - 1800 - 3600 * (count - 1)
    with state.held():
        for i in range(count):
            name = "model-train-newest" if i == count - 1 else f"model-train-{i:05x}"
            created, failed = first + 3600 * i, i % 10 == 7
            steps = [StepInfo(s.name, service=s.service) for s in pipeline.all_steps]
            info = WorkflowInfo(name, pipeline.name, FAILED if failed else SUCCEEDED, values, created, steps=steps)
            state.create(info, spec)
            message = "step train-model failed: exit code 1" if failed else ""
            state.update_workflow(name, started_at=created, finished_at=created + 42, message=message)
            for n, step in enumerate(pipeline.all_steps):
                status = CACHED if i % 3 == 0 and n == 0 else FAILED if failed and step.name == "train-model" else None
                outputs = {key: 0.97 if key == "accuracy" else f"/runs/{name}/{key}" for key in step.outputs}
                state.update_step(
                    name,
                    step.name,
                    status=status or SUCCEEDED,
                    started_at=created + n,
                    finished_at=created + n + 5,
                    outputs=outputs,
                )


def run(src: Path, args: list[str], home: Path) -> tuple[float, bytes]:
    """One `python -m trainflow ARGS` with `src` first on the path: its user + system CPU seconds, and its stdout."""
    env = {**os.environ, "PYTHONPATH": str(src), "TRAINFLOW_HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    env["COLUMNS"] = "200"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "trainflow", *args], env=env, capture_output=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a baseline tree's src/ folder")
    parser.add_argument("--runs", type=int, default=1000, help="recorded runs in the state")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--command", action="append", choices=list(COMMANDS), help="only these (repeatable)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cli-list-") as scratch:
        work = Path(scratch)
        trees = {"base": work / "base" / "src", "new": work / "new" / "src"}
        shutil.copytree(options.baseline, trees["base"], ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "src", trees["new"], ignore=shutil.ignore_patterns("__pycache__"))
        for src in trees.values():
            compileall.compile_dir(src, quiet=2)
        fill_state(work / "home", options.runs)
        homes = {column: work / f"home-{column}" for column in trees}
        for home in homes.values():
            shutil.copytree(work / "home", home)

        print(f"{options.runs} runs in the state; CPU ms, medians of {options.rounds} alternating rounds")
        print(f"{'command':20} {'base ms':>8} {'new ms':>7} {'new/base':>9}  same output")
        for name in options.command or list(COMMANDS):
            seconds: dict[str, list[float]] = {column: [] for column in trees}
            same = True
            for _ in range(options.rounds):
                printed = {}
                for column, src in trees.items():
                    cpu, printed[column] = run(src, COMMANDS[name], homes[column])
                    seconds[column].append(cpu)
                same = same and printed["base"] == printed["new"]
            base, new = (1000 * statistics.median(seconds[column]) for column in trees)
            ratio = statistics.median(n / b for n, b in zip(seconds["new"], seconds["base"], strict=True))
            print(f"{name:20} {base:8.0f} {new:7.0f} {ratio:8.2f}x  {'yes' if same else 'NO'}", flush=True)
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
