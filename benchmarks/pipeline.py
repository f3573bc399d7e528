"""Per-step orchestration overhead of the local runner, against kfp.local and Metaflow, same machine.

Each system runs a chain of 10 trivial steps, every step in its own process:
  - trainflow: a pipeline of ten `Call` steps (a Python function each, the output of one the input of
    the next), submitted with `LocalBackend.submit` and timed from submit to Succeeded (the detached
    runner's start included); also the same ten `trainflow step call` commands (each writing its
    outputs, as under the runner) run back to back with plain `subprocess.run`, alternating with the
    chain's runs, so the runner's own share is visible;
  - kfp.local with SubprocessRunner (benchmarks/peers/kfp_chain.py), in its own venv;
  - Metaflow local run (benchmarks/peers/metaflow_chain.py: start + 8 steps + end), in its own venv.
Optionally (--model-train; --only-model-train skips the chain) the wall time of a real model-train run
on mnist-10k until the model serves, each step's span after submit, and its non-training time (wall
minus train-model, plus the export train-model runs after training) as a ratio to `python -c "import
torch"` measured before and after it; then its resubmission under a new job-name (download, training
and export Cached) until the model serves.

    .venv/bin/python benchmarks/pipeline.py [--peers] [--model-train | --only-model-train] [--train-steps N]

Parts (named on the command line, default chain): `chain` (the above), `list` (`trainflow list`, `list -o json`
and the dashboard's /api/workflows with 10 and with 1,000 finished workflows written into the state directly;
goal: under 0.5 s with 1,000), `fanout` (benchmarks/fan_out.py: a fan-out of a trivial `Call` over a listing
step's output, 100 to 1,000 items: per-item time and the runner's peak memory; goal: flat).

    .venv/bin/python benchmarks/pipeline.py list [--repeat 3]

The peers' venvs are made under benchmarks/.venvs/ on first use (pip install kfp / metaflow).
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fan_out import bench_fanout

import trainflow
from trainflow.pipelines import Call, Pipeline, output
from trainflow.workflows.backend import FINISHED
from trainflow.workflows.local.backend import LocalBackend

HERE = Path(__file__).resolve().parent
STEPS = 10


def chain_pipeline(n: int) -> Pipeline:
    """step-0 -> step-1 -> ...: each calls chain_steps:step with the previous step's output (never cached)."""
    steps = [Call(name="step-0", function="chain_steps:step", inputs={"i": "0"}, outputs=("i",), cache=False)]
    for i in range(1, n):
        steps.append(
            Call(
                name=f"step-{i}",
                function="chain_steps:step",
                inputs={"i": output(f"step-{i - 1}", "i")},
                outputs=("i",),
                cache=False,
            )
        )
    return Pipeline(name="bench-chain", params=(), steps=tuple(steps))


def trainflow_per_step(home: Path, n: int) -> float:
    backend = LocalBackend(home)
    start = time.perf_counter()
    info = backend.submit(chain_pipeline(n), {}, python_path=[str(HERE / "peers")])
    while (info := backend.get(info.name)).status not in FINISHED:
        time.sleep(0.02)  # polling more often would take CPU from the runner on a small machine
    elapsed = time.perf_counter() - start
    assert info.status == "Succeeded" and info.steps[-1].outputs == {"i": n}, info.message
    backend.delete(info.name)
    return elapsed / n


def bare_per_step(home: Path, n: int) -> float:
    """The runner's commands back to back with `subprocess.run`, each writing its outputs where the runner has it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE / "peers"), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    for i in range(n):
        out = home / "bare-outputs" / f"step-{i}"
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "trainflow", "step", "call", "chain_steps:step", "--input", "i", str(i)],
            check=True,
            capture_output=True,
            env={**env, "TRAINFLOW_OUTPUTS": f"{out}/"},
        )
    return (time.perf_counter() - start) / n


def peer_python(name: str, package: str) -> Path:
    venv = HERE / ".venvs" / name
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", package], check=True)
    return python


def kfp_per_step(n: int) -> float:
    out = subprocess.run(
        [str(peer_python("kfp", "kfp")), str(HERE / "peers" / "kfp_chain.py"), str(n)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def metaflow_per_step() -> float:
    python = peer_python("metaflow", "metaflow")
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "USERNAME": "bench",
            "METAFLOW_DEFAULT_DATASTORE": "local",
            "METAFLOW_DATASTORE_SYSROOT_LOCAL": tmp,
        }
        start = time.perf_counter()
        subprocess.run(
            [str(python), str(HERE / "peers" / "metaflow_chain.py"), "--quiet", "run"],
            check=True,
            capture_output=True,
            env=env,
            cwd=tmp,
        )
        return (time.perf_counter() - start) / 10


def import_torch_seconds(repeat: int = 3) -> float:
    """Median wall time of `python -c "import torch"` in a fresh process: the yardstick of the non-training time."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_train(home: Path, data: Path, steps: int) -> None:
    env = {**os.environ, "TRAINFLOW_HOME": str(home)}
    base = [sys.executable, "-m", "trainflow"]
    torch_before = import_torch_seconds()
    submitted = time.time()
    start = time.perf_counter()
    subprocess.run(
        [
            *base,
            "submit",
            "model-train",
            "-p",
            "job-name=bench-e2e",
            "-p",
            f"s3-data-url={data}",
            "-p",
            "tf-worker=2",
            "-p",
            f"model-train-steps={steps}",
            "--wait",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    total = time.perf_counter() - start
    torch_after = import_torch_seconds()
    print(f"\nmodel-train on {data.name}, 2 workers, {steps} steps: {total:.1f} s wall (submit to a ready server)")
    took = print_steps(base, env, "bench-e2e", submitted)
    torch_s = statistics.median([torch_before, torch_after])
    export_in_training = export_seconds_in_training(base, env, "bench-e2e")
    rest = total - took["train-model"] + export_in_training
    print(
        f"  non-training time (wall minus train-model, plus the export train-model ran: {export_in_training:.2f} s): "
        f"{rest:.2f} s; `import torch` in this run {torch_s:.2f} s (before {torch_before:.2f}, after "
        f"{torch_after:.2f}) -> {rest / torch_s:.2f}x (goal <= 1.3x)"
    )
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    start = time.perf_counter()
    subprocess.run(
        [*base, "resubmit", "bench-e2e", "--job-name", "bench-again", "--wait"],
        check=True,
        env=env,
        capture_output=True,
    )
    again = time.perf_counter() - start
    again_submitted = time.time() - again
    print(
        f"resubmitted under a new job-name: {again:.1f} s from submit to a ready model server "
        f"({total / again:.1f}x faster than the first run; goal <= 5 s)"
    )
    print_steps(base, env, "bench-again", again_submitted)
    subprocess.run([*base, "delete", "--all"], env=env, capture_output=True)


def export_seconds_in_training(base: list[str], env: dict[str, str], name: str) -> float:
    """The seconds train-model spent exporting after training (its log says), 0 when it did not export."""
    log = subprocess.run(
        [*base, "logs", name, "--step", "train-model"], check=True, env=env, capture_output=True, text=True
    ).stdout
    found = re.search(r"exported step \d+ as version \d+ in ([0-9.]+) s", log)
    return float(found.group(1)) if found else 0.0


def print_steps(base: list[str], env: dict[str, str], name: str, submitted: float) -> dict[str, float]:
    """Print each step's status, start and end after submit, time and accuracy; returns the seconds each took."""
    import json

    info = json.loads(
        subprocess.run([*base, "get", name, "-o", "json"], check=True, env=env, capture_output=True, text=True).stdout
    )
    took = {}
    for s in info["steps"]:
        took[s["name"]] = (s["finished_at"] or time.time()) - s["started_at"] if s["started_at"] else 0.0
        span = (
            f"+{s['started_at'] - submitted:5.2f} .. +{(s['finished_at'] or time.time()) - submitted:5.2f}"
            if s["started_at"]
            else " " * 16
        )
        print(f"  {s['name']:18} {s['status']:10} {span}  {took[s['name']]:6.2f} s  {s['outputs'].get('accuracy', '')}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peers", action="store_true", help="Also run kfp.local and Metaflow (creates their venvs).")
    parser.add_argument("--model-train", action="store_true", help="Also time a real model-train run.")
    parser.add_argument("--only-model-train", action="store_true", help="Skip the chain; time only model-train.")
    parser.add_argument("--train-steps", type=int, default=600, help="model-train's model-train-steps.")
    parser.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "mnist-10k")
    parser.add_argument(
        "--no-compile", action="store_true", help="Do not write trainflow's bytecode caches first (as earlier figures)."
    )
    parser.add_argument(
        "parts",
        nargs="*",
        default=["chain"],
        metavar="PART",
        help=f"What to measure: {', '.join(PARTS)} (default: chain).",
    )
    args = parser.parse_args()
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}: use {', '.join(PARTS)}")
    for part in dict.fromkeys(args.parts):
        PARTS[part](args)


def bench_chain(args: argparse.Namespace) -> None:
    """The chain of trivial steps against bare commands (and the peers, and model-train, when asked)."""
    # Every step is a fresh interpreter: without bytecode caches (a source checkout under
    # PYTHONDONTWRITEBYTECODE) each would compile trainflow's modules again, which no installed copy does.
    if not args.no_compile:
        compileall.compile_dir(Path(trainflow.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if args.only_model_train:
            model_train(home, args.data, args.train_steps)
            return
        chains, bares = [], []
        for _ in range(args.repeat):  # alternating, so both see the same load
            chains.append(trainflow_per_step(home, STEPS))
            bares.append(bare_per_step(home, STEPS))
        ours, bare = statistics.median(chains), statistics.median(bares)
        print(f"chain of {STEPS} callable steps, median of {args.repeat} runs (alternating), seconds per step")
        print(f"  trainflow local runner (submit to Succeeded): {ours:.3f} s/step (goal <= 0.1)")
        print(f"  same commands, bare subprocess:   {bare:.3f} s/step  -> runner's own share {ours - bare:+.3f} s/step")
        print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.peers:
            kfp = statistics.median(kfp_per_step(STEPS) for _ in range(args.repeat))
            metaflow = statistics.median(metaflow_per_step() for _ in range(args.repeat))
            print(f"  kfp.local SubprocessRunner:       {kfp:.3f} s/step  ({kfp / ours:.1f}x ours)")
            print(f"  Metaflow local run:               {metaflow:.3f} s/step  ({metaflow / ours:.1f}x ours)")
        if args.model_train:
            model_train(home, args.data, args.train_steps)


LIST_GOAL = 0.5  # seconds: `trainflow list` and the dashboard's list with 1,000 workflows in the state


def fill_state(home: Path, count: int) -> None:
    """`count` finished three-step workflows, written into the state directly (as a runner would have left them)."""
    from trainflow.pipelines.serial import to_dict
    from trainflow.workflows.backend import SUCCEEDED, StepInfo, WorkflowInfo
    from trainflow.workflows.local.state import StateStore

    pipeline = chain_pipeline(3)
    spec = {"pipeline": to_dict(pipeline), "python_path": [str(HERE / "peers")]}
    state, now = StateStore(home / "trainflow.db"), time.time()
    with state.held():
        for i in range(count):
            name = f"listed-{i:05d}"
            steps = [StepInfo(s.name, status=SUCCEEDED) for s in pipeline.steps]
            info = WorkflowInfo(name, pipeline.name, SUCCEEDED, {}, now - count + i, steps=steps)
            state.create(info, spec)
            state.update_workflow(name, started_at=now - count + i, finished_at=now - count + i + 1)


def time_list(home: Path, repeat: int) -> dict[str, float]:
    """Median seconds of `trainflow list`, `list -o json` and the dashboard's /api/workflows over `home`."""
    from starlette.testclient import TestClient

    from trainflow.ui.app import create_app

    env = {**os.environ, "TRAINFLOW_HOME": str(home)}
    argv = [sys.executable, "-m", "trainflow"]
    found: dict[str, list[float]] = {"trainflow --version": [], "trainflow list": [], "trainflow list -o json": []}
    found["dashboard GET /api/workflows"] = []
    client = TestClient(create_app(LocalBackend(home)), base_url="http://127.0.0.1")
    for _ in range(repeat):
        for label, extra in (("trainflow --version", ["--version"]), ("trainflow list", ["list"])):
            started = time.perf_counter()
            subprocess.run([*argv, *extra], env=env, check=True, capture_output=True)
            found[label].append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run([*argv, "list", "-o", "json"], env=env, check=True, capture_output=True)
        found["trainflow list -o json"].append(time.perf_counter() - started)
        started = time.perf_counter()
        assert client.get("/api/workflows").status_code == 200
        found["dashboard GET /api/workflows"].append(time.perf_counter() - started)
    return {label: statistics.median(times) for label, times in found.items()}


def bench_list(args: argparse.Namespace) -> None:
    """`trainflow list` and the dashboard's list with 10 and 1,000 workflows in the state (goal: under 0.5 s)."""
    figures = {}
    for count in (10, 1000):
        with tempfile.TemporaryDirectory() as tmp:
            fill_state(Path(tmp), count)
            figures[count] = time_list(Path(tmp), args.repeat)
    print(f"listing workflows, median of {args.repeat} runs, seconds (goal < {LIST_GOAL} s with 1,000)")
    for label, small in figures[10].items():
        large = figures[1000][label]
        verdict = "" if label.endswith("--version") else ("  ok" if large < LIST_GOAL else "  GOAL NOT MET")
        print(f"  {label:<30} 10: {small:.3f}  1,000: {large:.3f}  ({large / small:.1f}x){verdict}")
    print(f"  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


PARTS = {"chain": bench_chain, "list": bench_list, "fanout": bench_fanout}  # what `pipeline.py PART...` runs, in order


if __name__ == "__main__":
    main()
