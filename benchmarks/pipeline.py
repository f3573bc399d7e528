"""Per-step orchestration overhead of the local runner, against kfp.local and Metaflow, same machine.

Each system runs a chain of 10 trivial steps, every step in its own process:
  - trainflow: the local runner's executor (the code `trainflow submit` runs detached) with ten
    `trainflow step get-workflow-info` steps; also the same ten commands run back to back with plain
    `subprocess.run`, so the runner's own share is visible;
  - kfp.local with SubprocessRunner (benchmarks/peers/kfp_chain.py), in its own venv;
  - Metaflow local run (benchmarks/peers/metaflow_chain.py: start + 8 steps + end), in its own venv.
Optionally (--model-train) the wall time of a real model-train run on mnist-10k, per step.

    .venv/bin/python benchmarks/pipeline.py [--peers] [--model-train]

The peers' venvs are made under benchmarks/.venvs/ on first use (pip install kfp / metaflow).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainflow.workflows.backend import PENDING, RUNNING, StepInfo, WorkflowInfo
from trainflow.workflows.local.executor import Executor
from trainflow.workflows.local.layout import Layout
from trainflow.workflows.spec import Param, ParamRef, Pipeline, Step
from trainflow.workflows.state import StateStore

HERE = Path(__file__).resolve().parent
STEPS = 10


def chain_pipeline(n: int) -> Pipeline:
    chain = []
    for i in range(n):
        chain.append(Step(f"step-{i}", ("--job-name", ParamRef("job-name"), "--s3-train-base-url", ParamRef("base")),
                          depends=(f"step-{i - 1}",) if i else ()))
    return Pipeline("bench-chain", (Param("job-name", "bench", ""), Param("base", "", "")), tuple(chain), "job-name")


class _ChainExecutor(Executor):
    """Runs `step-i` as the real `get-workflow-info` step command."""

    def _launch(self, step: Step) -> None:
        super()._launch(Step("get-workflow-info", step.args, step.depends))
        run = self.running.pop("get-workflow-info")
        run.step = step
        self.running[step.name] = run
        self.status.pop("get-workflow-info", None)
        self.status[step.name] = RUNNING


def trainflow_per_step(home: Path, n: int) -> float:
    layout = Layout(home)
    pipeline = chain_pipeline(n)
    name = f"bench-{time.monotonic_ns()}"
    StateStore(layout.db).create(WorkflowInfo(name, pipeline.name, PENDING, {"job-name": name, "base": str(home / "store")},
                                              time.time(), steps=[StepInfo(s.name) for s in pipeline.steps]))
    executor = _ChainExecutor(layout, name, {pipeline.name: pipeline})
    executor.status = {s.name: PENDING for s in pipeline.steps}
    start = time.perf_counter()
    executor.run()
    return (time.perf_counter() - start) / n


def bare_per_step(home: Path, n: int) -> float:
    argv = [sys.executable, "-m", "trainflow", "step", "get-workflow-info", "--job-name", "bare",
            "--s3-train-base-url", str(home / "store")]
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(argv, check=True, capture_output=True)
    return (time.perf_counter() - start) / n


def peer_python(name: str, package: str) -> Path:
    venv = HERE / ".venvs" / name
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", package], check=True)
    return python


def kfp_per_step(n: int) -> float:
    out = subprocess.run([str(peer_python("kfp", "kfp")), str(HERE / "peers" / "kfp_chain.py"), str(n)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def metaflow_per_step() -> float:
    python = peer_python("metaflow", "metaflow")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "USERNAME": "bench", "METAFLOW_DEFAULT_DATASTORE": "local", "METAFLOW_DATASTORE_SYSROOT_LOCAL": tmp}
        start = time.perf_counter()
        subprocess.run([str(python), str(HERE / "peers" / "metaflow_chain.py"), "--quiet", "run"], check=True,
                       capture_output=True, env=env, cwd=tmp)
        return (time.perf_counter() - start) / 10


def model_train(home: Path, data: Path) -> None:
    env = {**os.environ, "TRAINFLOW_HOME": str(home)}
    base = [sys.executable, "-m", "trainflow"]
    start = time.perf_counter()
    subprocess.run([*base, "submit", "model-train", "-p", "job-name=bench-e2e", "-p", f"s3-data-url={data}",
                    "-p", "tf-worker=2", "-p", "model-train-steps=600", "--wait"], check=True, env=env, capture_output=True)
    total = time.perf_counter() - start
    import json

    info = json.loads(subprocess.run([*base, "get", "bench-e2e", "-o", "json"], check=True, env=env,
                                     capture_output=True, text=True).stdout)
    print(f"\nmodel-train on {data.name}, 2 workers, 600 steps: {total:.1f} s wall (submit to Succeeded)")
    for s in info["steps"]:
        took = (s["finished_at"] or time.time()) - s["started_at"] if s["started_at"] else 0
        print(f"  {s['name']:18} {s['status']:10} {took:6.1f} s  {s['outputs'].get('accuracy', '')}")
    subprocess.run([*base, "delete", "bench-e2e"], env=env, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peers", action="store_true", help="Also run kfp.local and Metaflow (creates their venvs).")
    parser.add_argument("--model-train", action="store_true", help="Also time a real model-train run.")
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "mnist-10k")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ours = statistics.median(trainflow_per_step(home, STEPS) for _ in range(args.repeat))
        bare = statistics.median(bare_per_step(home, STEPS) for _ in range(args.repeat))
        print(f"chain of {STEPS} trivial steps, median of {args.repeat} runs, seconds per step")
        print(f"  trainflow local runner:           {ours:.3f} s/step (goal <= 0.1)")
        print(f"  same commands, bare subprocess:   {bare:.3f} s/step  -> runner's own share {ours - bare:+.3f} s/step")
        if args.peers:
            kfp = statistics.median(kfp_per_step(STEPS) for _ in range(args.repeat))
            metaflow = statistics.median(metaflow_per_step() for _ in range(args.repeat))
            print(f"  kfp.local SubprocessRunner:       {kfp:.3f} s/step  ({kfp / ours:.1f}x ours)")
            print(f"  Metaflow local run:               {metaflow:.3f} s/step  ({metaflow / ours:.1f}x ours)")
        if args.model_train:
            model_train(home, args.data)


if __name__ == "__main__":
    main()
