"""What tracking costs: a training step with MLflow tracking on vs off (same run), and the CLI's start-up without it.

    python benchmarks/tracking.py            # starts its own `mlflow server` on loopback

Training: the same `trainflow step train-model` (1 worker, --log-every 1: a curve point every step, the
worst case) with MLFLOW_TRACKING_URI unset and set, in alternating rounds; the figure is the time per step
from the training loop's own train_seconds. Start-up: `trainflow --help` with the variable unset, and how
much of it trainflow.tracking's modules take (the only code tracking adds to start-up; mlflow stays out).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, wait_for_port  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "mnist-10k"
STEPS = 60
ROUNDS = 2


def train_seconds(work: Path, uri: str) -> float:
    train = work / f"train-{time.monotonic_ns()}"
    env = {**os.environ, "TRAINFLOW_HOME": str(work / "home"), "MLFLOW_TRACKING_URI": uri}
    argv = [
        sys.executable,
        "-m",
        "trainflow",
        "step",
        "train-model",
        "--data-dir",
        str(DATA),
        "--train-dir",
        str(train),
    ]
    argv += ["--workers", "1", "--train-steps", str(STEPS), "--log-every", "1", "--model", "mlp"]
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return float(json.loads((train / "metrics.json").read_text())["train_seconds"])


CALLS = 20_000
PER_CALL = """
import os, resource, sys, time
from trainflow.progress import report_progress
from trainflow.tracking import sink
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
start_cpu, start = cpu(), time.perf_counter()
for i in range(CALLS):
    report_progress(i, None, loss=1.0 / (i + 1), accuracy=0.5, examples_per_sec=1000.0)
wall = time.perf_counter() - start
sink.close_sink(os.environ.get("MLFLOW_RUN_ID", ""), 60)
print((time.perf_counter() - start) / CALLS * 1e6, (cpu() - start_cpu) / CALLS * 1e6, wall / CALLS * 1e6)
""".replace("CALLS", str(CALLS))


def per_report(uri: str) -> tuple[float, float, float]:
    """One report_progress (3 metrics) in a process: wall us with the sink's sending, CPU us, the call's own us."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TRAINFLOW_PROGRESS": ""}
    if uri:
        import urllib.request

        body = json.dumps({"experiment_id": "0"}).encode()
        request = urllib.request.Request(
            f"{uri}/api/2.0/mlflow/runs/create", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request) as reply:
            env["MLFLOW_RUN_ID"] = json.loads(reply.read())["run"]["info"]["run_id"]
    out = subprocess.run([sys.executable, "-c", PER_CALL], env=env, check=True, capture_output=True, text=True)
    total, cpu, call = (float(x) for x in out.stdout.split())
    return total, cpu, call


def startup(env: dict[str, str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "trainflow", "--help"], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        mlflow = str(Path(sys.executable).with_name("mlflow"))
        store = ["--backend-store-uri", f"sqlite:///{work}/m.db", "--artifacts-destination", str(work / "art")]
        server = subprocess.Popen(
            [mlflow, "server", *store, "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(port, timeout=120, proc=server)
            off_call, on_call = per_report(""), per_report(f"http://127.0.0.1:{port}")
            print(f"report_progress with 3 metrics ({CALLS} calls, every point sent to a live server):", flush=True)
            print(
                f"  off: {off_call[2]:.1f} us a call, {off_call[1]:.1f} us CPU; on: {on_call[2]:.1f} us a call, "
                f"{on_call[1]:.1f} us CPU (the sending thread's included; all sent after {on_call[0]:.1f} us a call)",
                flush=True,
            )
            off, on = [], []
            for _ in range(ROUNDS):
                off.append(train_seconds(work, ""))
                on.append(train_seconds(work, f"http://127.0.0.1:{port}"))
        finally:
            os.killpg(server.pid, 15)
            server.wait()
        per_off, per_on = statistics.median(off) / STEPS * 1000, statistics.median(on) / STEPS * 1000
        print(f"training step ({STEPS} steps, a curve point every step, {ROUNDS} rounds, median):", flush=True)
        print(f"  tracking off {per_off:.2f} ms/step, on {per_on:.2f} ms/step: {per_on / per_off:.3f}x", flush=True)
        env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
        print(f"trainflow --help, MLFLOW_TRACKING_URI unset: {startup(env) * 1000:.0f} ms (median of 7)", flush=True)
        tracking_us = statistics.median(_tracking_import_us(env) for _ in range(7))
        print(
            f"  of which trainflow.tracking's modules: {tracking_us / 1000:.2f} ms (python -X importtime, median of 7)"
        )
        print(f"  mlflow imported: {_imports_mlflow(env)}", flush=True)
        mlflow_s = statistics.median(_timed([sys.executable, "-c", "import mlflow"], env) for _ in range(3))
        print(
            f"  for scale: python -c 'import mlflow' takes {mlflow_s * 1000:.0f} ms, what an eager import would add",
            flush=True,
        )


def _tracking_import_us(env: dict[str, str]) -> int:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "trainflow", "--help"], env=env, capture_output=True, text=True
    )
    total = 0
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip().startswith("trainflow.tracking"):
            total += int(parts[0].split(":")[1])  # self time: nested tracking modules are counted once each
    return total


def _imports_mlflow(env: dict[str, str]) -> bool:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "trainflow", "--help"], env=env, capture_output=True, text=True
    )
    return any(line.split("|")[-1].strip().startswith("mlflow") for line in out.stderr.splitlines())


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
