"""CPU time of a `trainflow` process per command: this tree against a baseline tree, both as the test suite runs them.

Each command runs in a fresh interpreter; its CPU time (user + system, from the kernel's accounting of the child) is
what start-up costs on a loaded machine, where wall time mostly measures the neighbours. Rounds alternate the trees
command by command, and the ratio is the median of the per-round ratios. Three columns per command:

- `base`: the baseline tree without bytecode, as the suite ran it before tests/conftest.py compiled the package
  (PYTHONDONTWRITEBYTECODE is set on our machines, so no `trainflow` process ever wrote a .pyc);
- `base+pyc`: the baseline with its bytecode compiled (what the import changes alone gain);
- `new`: this tree, compiled as tests/conftest.py now does before the suite starts.

    mkdir -p /tmp/base && git archive BASE_COMMIT src | tar -x -C /tmp/base
    .venv/bin/python benchmarks/cli_start.py --baseline /tmp/base/src --rounds 20
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist-10k"

# What the tests and the local runner start most: the listing, the workflow commands, a warm dataset sync, the help of
# the step programs and commands that go on to train or serve (their start-up is the import of their module).
COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "list": ["list"],
    "get (missing)": ["get", "no-such-workflow"],
    "delete --all": ["delete", "--all"],
    "submit --help": ["submit", "--help"],
    "data sync (warm)": ["data", "sync", str(MNIST), "--name", "mnist"],
    "step train-model --help": ["step", "train-model", "--help"],
    "workflow-runner --help": ["workflow-runner", "--help"],
    "predict --help": ["predict", "--help"],
    "step notify (nothing to send)": [
        "step",
        "notify",
        "--url-env",
        "NO_SUCH_VARIABLE",
        "--on",
        "Failed",
        "--name",
        "run-1",
        "--pipeline",
        "p",
        "--status",
        "Succeeded",
        "--duration",
        "0.5",
    ],
}


def cpu_seconds(src: Path, args: list[str], home: Path) -> float:
    """One `python -m trainflow ARGS` with `src` first on the path (its .pyc files as found, none written); its user +
    system CPU seconds."""
    env = {**os.environ, "PYTHONPATH": str(src), "TRAINFLOW_HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "trainflow", *args], env=env, capture_output=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a baseline tree's src/ folder")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--command", action="append", choices=list(COMMANDS), help="only these (repeatable)")
    options = parser.parse_args()
    names = options.command or list(COMMANDS)

    with tempfile.TemporaryDirectory(prefix="cli-start-") as scratch:
        work = Path(scratch)
        trees = {  # column -> (src folder, its own TRAINFLOW_HOME)
            "base": work / "base-source" / "src",
            "base+pyc": work / "base-compiled" / "src",
            "new": work / "new" / "src",
        }
        shutil.copytree(options.baseline, trees["base"], ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(options.baseline, trees["base+pyc"], ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "src", trees["new"], ignore=shutil.ignore_patterns("__pycache__"))
        for column in ("base+pyc", "new"):
            compileall.compile_dir(trees[column], quiet=2)
        homes = {column: work / f"home-{column}" for column in trees}
        for column, src in trees.items():  # the warm sync's first, cold one
            cpu_seconds(src, COMMANDS["data sync (warm)"], homes[column])

        print(f"{'command':30} {'base ms':>8} {'base+pyc':>9} {'new ms':>7} {'new/base':>9} {'new/base+pyc':>13}")
        for name in names:
            seconds: dict[str, list[float]] = {column: [] for column in trees}
            for _ in range(options.rounds):
                for column, src in trees.items():
                    seconds[column].append(cpu_seconds(src, COMMANDS[name], homes[column]))
            ms = {column: 1000 * statistics.median(values) for column, values in seconds.items()}
            to_base = statistics.median(n / b for n, b in zip(seconds["new"], seconds["base"], strict=True))
            to_pyc = statistics.median(n / b for n, b in zip(seconds["new"], seconds["base+pyc"], strict=True))
            print(
                f"{name:30} {ms['base']:8.0f} {ms['base+pyc']:9.0f} {ms['new']:7.0f} {to_base:8.2f}x {to_pyc:12.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
