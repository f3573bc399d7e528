"""What MLflow tracking costs a training step (on vs off, same run), its fixed costs, and the CLI's start-up without it.

    .venv/bin/python benchmarks/tracking.py [--steps 400] [--rounds 3] [--startup-rounds 9]
        [--before-src /tmp/before/src [--before-training]]   # also tracking on with that code, in the same rounds

Starts its own `mlflow server` (SQLite store, local artifact root) on loopback. Prints the load average first:
other work on the machine skews every time here, so each figure is a median of per-round ratios, and the
variants of a round run back to back in alternating order.

1. The training loop's steady state: `trainflow step train-model` (1 worker, mlp, --log-every 1: a curve
   point every step, the worst case), MLFLOW_TRACKING_URI unset and set. The time of a step is read from
   the progress events the loop writes at every step (TRAINFLOW_PROGRESS, in both variants): the mean over
   the steps after the first fifth (warm-up) and before the last, so everything the loop does, the sending
   thread's competition for the CPU and the interpreter lock included, and nothing before or after it.
2. Fixed costs of a tracked run: the last step's extra time (it waits until the server has acknowledged
   every point: a worker ends with os._exit), and in a fresh process the step run's open (the `mlflow`
   import, the run's creation, the active run) and close (the last batch, the step's log, the run's end),
   and the whole step command's wall time on vs off.
3. The loop's recording alone (`report_progress`, 2 metrics, one call every 20 ms for 500 calls) in a fresh
   process: its CPU time a step (the sending thread's included; CPU time, which other load skews far less than
   wall time), the caller's time a call and the last call's wait for the acknowledgement.
4. `trainflow --help` with MLFLOW_TRACKING_URI unset against the code before tracking (the parent of the
   first commit of src/trainflow/tracking, from `git archive`), alternating, and whether mlflow is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from native_load import cpu_seconds  # noqa: E402

from tests.servers import free_port, wait_for_port  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "mnist-10k"
EXPERIMENT = "tracking-benchmark"
PACED_STEPS, PACE_SECONDS, PACED_WARMUP = 500, 0.02, 100

# The loop's recording alone, at the pace of a 20 ms training step (the sending thread then posts ~100 points a
# second, as it does in training): the process's CPU a step from step 100 on (after the first batches), the
# caller's time a call, and the last step's wait for the server's acknowledgement.
PACED = """
import resource, sys, time
from trainflow.progress import report_progress
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
steps, pace, warmup = (float(x) for x in sys.argv[1:4])
steps, warmup = int(steps), int(warmup)
in_calls = 0.0
for i in range(1, steps + 1):
    time.sleep(pace)
    if i == warmup:
        start_cpu = cpu()
    if i == steps:
        steady_cpu = cpu() - start_cpu
    began = time.perf_counter()
    report_progress(i, steps, **{"train/loss": 1.0 / i, "train/accuracy": 0.5})
    took = time.perf_counter() - began
    if warmup <= i < steps:
        in_calls += took
n = steps - warmup
print(steady_cpu / n * 1e6, in_calls / n * 1e6, took * 1000)
"""

OPEN_CLOSE = """
import time
start = time.perf_counter()
from trainflow.tracking.step_run import step_run
run = step_run("benchmark-step")
run.__enter__()
opened = time.perf_counter()
run.__exit__(None, None, None)
print(opened - start, time.perf_counter() - opened)
"""


def environment(uri: str, src: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "TRAINFLOW_PROGRESS"}
    env["MLFLOW_EXPERIMENT_NAME"] = EXPERIMENT
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    if src:
        env["PYTHONPATH"] = src
    return env


def create_run(uri: str) -> str:
    body = json.dumps({"experiment_id": "0"}).encode()
    request = urllib.request.Request(f"{uri}/api/2.0/mlflow/runs/create", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as reply:
        return str(json.loads(reply.read())["run"]["info"]["run_id"])


def train(work: Path, env: dict[str, str], steps: int, log_every: int) -> dict[str, float]:
    """One train-model step: the steady ms a step, the last step's ms, the command's and the server's seconds."""
    name = f"train-{time.monotonic_ns()}"
    progress = work / f"{name}.progress.jsonl"
    argv = [sys.executable, "-m", "trainflow", "step", "train-model", "--data-dir", str(DATA)]
    argv += ["--train-dir", str(work / name), "--workers", "1", "--train-steps", str(steps)]
    argv += ["--log-every", str(log_every), "--model", "mlp"]
    env = {**env, "TRAINFLOW_HOME": str(work / "home"), "TRAINFLOW_PROGRESS": str(progress)}
    server_cpu = cpu_seconds(SERVER_PID[0]) if SERVER_PID else 0.0
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, preexec_fn=_pin(TRAIN_CPUS))
    wall = time.perf_counter() - start
    server_cpu = (cpu_seconds(SERVER_PID[0]) if SERVER_PID else 0.0) - server_cpu
    times = {e["step"]: e["time"] for e in map(json.loads, progress.read_text().splitlines()) if "step" in e}
    logged = sorted(times)  # every log_every-th step and the last
    first = next(s for s in logged if s >= steps // 5)
    before_last = logged[-2]
    steady = (times[before_last] - times[first]) / (before_last - first)
    last = (times[steps] - times[before_last]) / (steps - before_last) * 1000
    return {"steady_ms": steady * 1000, "last_ms": last, "wall_s": wall, "server_cpu_s": server_cpu}


# --pin: the server on the last CPU, everything else on the others, so that the server's work (a remote
# server's, for a user) does not compete with the loop for its cores in either variant.
SERVER_PID: list[int] = []
TRAIN_CPUS: set[int] = set()


def _pin(cpus: set[int]) -> Any:
    return (lambda: os.sched_setaffinity(0, cpus)) if cpus else None


def paced(uri: str, src: str = "") -> tuple[float, float, float]:
    """CPU us a step (sending thread included), the caller's us a call, and the last call's ms (its drain)."""
    env = environment(uri, src)
    if uri:
        env["MLFLOW_RUN_ID"] = create_run(uri)
    argv = [sys.executable, "-c", PACED, str(PACED_STEPS), str(PACE_SECONDS), str(PACED_WARMUP)]
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    cpu, call, last = (float(x) for x in out.stdout.split())
    return cpu, call, last


def open_close(uri: str) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", OPEN_CLOSE], env=environment(uri), check=True, capture_output=True, text=True
    )
    opened, closed = (float(x) for x in out.stdout.split())
    return opened, closed


def median_ratio(pairs: list[tuple[float, float]]) -> float:
    return statistics.median(b / a for a, b in pairs)


def training(work: Path, uri: str, args: argparse.Namespace) -> None:
    variants = {"off": environment(""), "on": environment(uri)}
    if args.before_src and args.before_training:
        variants["on, before"] = environment(uri, args.before_src)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for round_ in range(args.rounds):
        order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in order:
            runs[name].append(train(work, variants[name], args.steps, args.log_every))
        print(
            f"  round {round_ + 1}: "
            + ", ".join(
                f"{n} {runs[n][-1]['steady_ms']:.2f} ms (server CPU {runs[n][-1]['server_cpu_s']:.2f} s)"
                for n in variants
            ),
            flush=True,
        )
    print(f"\ntraining loop, {args.steps} steps, a curve point every {args.log_every}, {args.rounds} rounds (medians):")
    print(
        "| variant | ms/step, steady | vs off (median of per-round ratios) | last step, ms | step command, s | server CPU, s |"
    )
    print("|---|---|---|---|---|---|")
    for name, got in runs.items():
        ratio = median_ratio([(off["steady_ms"], r["steady_ms"]) for off, r in zip(runs["off"], got, strict=True)])
        steady = statistics.median(r["steady_ms"] for r in got)
        last = statistics.median(r["last_ms"] for r in got)
        wall = statistics.median(r["wall_s"] for r in got)
        server = statistics.median(r["server_cpu_s"] for r in got)
        print(
            f"| tracking {name} | {steady:.2f} | {ratio:.4f} ({(ratio - 1) * 100:+.2f}%) | {last:.1f} | {wall:.1f} "
            f"| {server:.2f} |"
        )


def fixed_costs(uri: str, rounds: int) -> None:
    got = [open_close(uri) for _ in range(rounds)]
    opened, closed = statistics.median(g[0] for g in got), statistics.median(g[1] for g in got)
    print(f"\na step run in a fresh process (median of {rounds}): open {opened:.2f} s (mlflow's import included),")
    print(f"  close {closed * 1000:.0f} ms (the sink's last batch, the step's log, the run's end)")


def recording(uri: str, args: argparse.Namespace) -> None:
    variants = [("off", "", ""), ("on", uri, "")] + ([("on, before", uri, args.before_src)] if args.before_src else [])
    got: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _, _ in variants}
    for round_ in range(args.rounds):
        for name, u, src in variants if round_ % 2 == 0 else reversed(variants):
            got[name].append(paced(u, src))
    print(
        f"\nreport_progress as the loop calls it (2 metrics), {PACED_STEPS} calls {PACE_SECONDS * 1000:.0f} ms apart, "
        f"{args.rounds} rounds (medians; CPU from call {PACED_WARMUP} on):"
    )
    print("| variant | process CPU, us a step | of which tracking | caller, us a call | last call, ms |")
    print("|---|---|---|---|---|")
    off_cpu = statistics.median(g[0] for g in got["off"])
    for name, rows in got.items():
        cpu = statistics.median(g[0] for g in rows)
        call, last = statistics.median(g[1] for g in rows), statistics.median(g[2] for g in rows)
        print(f"| tracking {name} | {cpu:.1f} | {cpu - off_cpu:.1f} | {call:.1f} | {last:.1f} |", flush=True)


def startup(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        first = subprocess.run(
            ["git", "log", "--format=%H", "--", "src/trainflow/tracking"], cwd=ROOT, capture_output=True, text=True
        ).stdout.split()[-1]
        archive = subprocess.run(["git", "archive", f"{first}^", "src"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        now, before = environment(""), environment("", f"{tmp}/src")
        pairs = []  # (before, now)
        for round_ in range(rounds):
            if round_ % 2 == 0:
                took_now = _help_seconds(now)
                pairs.append((_help_seconds(before), took_now))
            else:
                took_before = _help_seconds(before)
                pairs.append((took_before, _help_seconds(now)))
    ratio = median_ratio(pairs)
    print(f"\ntrainflow --help, MLFLOW_TRACKING_URI unset, {rounds} alternating rounds (medians):")
    print("| code | ms | vs before (median of per-round ratios) |")
    print("|---|---|---|")
    print(f"| before tracking ({first[:7]}^) | {statistics.median(b for b, _ in pairs) * 1000:.0f} | 1 |")
    print(f"| now | {statistics.median(n for _, n in pairs) * 1000:.0f} | {ratio:.3f} ({(ratio - 1) * 100:+.1f}%) |")
    tracking_us = statistics.median(_tracking_import_us(environment("")) for _ in range(5))
    print(f"trainflow.tracking's own import: {tracking_us / 1000:.2f} ms (python -X importtime, median of 5);")
    print(f"mlflow imported by trainflow --help: {_imports_mlflow(environment(''))}")


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


def _help_seconds(env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trainflow", "--help"], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps a run (the first fifth is warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of training runs, one run a variant each")
    parser.add_argument("--startup-rounds", type=int, default=9)
    parser.add_argument("--before-src", default="", help="another checkout's src/: its recording measured too")
    parser.add_argument("--before-training", action="store_true", help="and its training runs (a third per round)")
    parser.add_argument("--log-every", type=int, default=1, help="steps between curve points (trainflow's is 20)")
    parser.add_argument("--pin", action="store_true", help="the server on the last CPU, the rest on the others")
    parser.add_argument("--skip-training", action="store_true", help="only the per-call, fixed and start-up figures")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs", flush=True)
    cpus = sorted(os.sched_getaffinity(0))
    if args.pin:
        TRAIN_CPUS.update(cpus[:-1])
        print(f"pinned: the MLflow server on CPU {cpus[-1]}, training on {sorted(TRAIN_CPUS)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        mlflow = str(Path(sys.executable).with_name("mlflow"))
        store = ["--backend-store-uri", f"sqlite:///{work}/m.db", "--artifacts-destination", str(work / "art")]
        server = subprocess.Popen(
            [mlflow, "server", *store, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_pin({cpus[-1]} if args.pin else set()),
        )
        SERVER_PID.append(server.pid)
        uri = f"http://127.0.0.1:{port}"
        try:
            wait_for_port(port, timeout=180, proc=server)
            if not args.skip_training:
                training(work, uri, args)
            fixed_costs(uri, 3)
            recording(uri, args)
        finally:
            os.killpg(server.pid, 15)
            server.wait()
    startup(args.startup_rounds)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
