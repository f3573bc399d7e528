"""trainflow's REST inference path against the floor's, in process: CPU microseconds per request, no sockets.

`serve.py --load floors` measures the servers end to end with wrk, which on a shared, loaded machine swings
several-fold from round to round. This drives the two ASGI apps directly (the same V2 request, JSON and
binary tensors, the example's MLP) and counts this process's CPU time, so another session's load changes
the figures little: what is left is each app's own work per request. The apps alternate round by round;
ratios are per round (min / median), floor / trainflow (1.0x: trainflow costs what the floor costs).

    .venv/bin/python benchmarks/serve_overhead.py [--rounds 5] [--requests 3000] [--baseline-src /tmp/base/src]

`--baseline-src` also measures another checkout's trainflow (the code before a change) in a subprocess
with the same rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KINDS = ("json", "binary")
_APPS: dict[str, Any] = {}  # each app built once per process
_SERVERS: list[Any] = []  # the servers behind them, stopped before their model's folder is removed


def requests() -> dict[str, tuple[bytes, list[tuple[bytes, bytes]]]]:
    """The V2 infer request of each kind: its body and its headers, as an ASGI scope holds them."""
    import numpy as np
    from serve import v2_binary_request, v2_requests

    image = np.random.default_rng(1).random((1, 784), dtype=np.float32)
    json_body, _ = v2_requests(image)
    binary_body, header_length = v2_binary_request(image)
    return {
        "json": (json_body, [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(json_body))]),
        "binary": (
            binary_body,
            [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", b"%d" % len(binary_body)),
                (b"inference-header-content-length", b"%d" % header_length),
            ],
        ),
    }


async def one(app: Any, body: bytes, headers: list[tuple[bytes, bytes]], sent: list[dict]) -> None:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v2/models/mnist/infer", "raw_path": b"/v2/models/mnist/infer", "query_string": b"",
        "root_path": "", "headers": headers, "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
    }  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)


async def cpu_us_per_request(app: Any, body: bytes, headers: list[tuple[bytes, bytes]], count: int) -> float:
    sent: list[dict] = []
    await one(app, body, headers, sent)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"answered {sent[0]['status']}: {sent[1]['body'][:200]!r}")
    started = time.process_time()
    for _ in range(count):
        sent.clear()
        await one(app, body, headers, sent)
    return (time.process_time() - started) / count * 1e6


def trainflow_app(base: Path) -> tuple[Any, Any]:
    """The REST app `trainflow serve` runs, on a loaded model; and the server to stop."""
    from serve import loaded_server

    from trainflow.serving.rest_app import build_rest_app
    from trainflow.serving.rest_io import BodyLimits
    from trainflow.serving.server import BUFFERED_BODIES, DEFAULT_MAX_REQUEST_BYTES

    server = loaded_server(base)
    limits = BodyLimits(DEFAULT_MAX_REQUEST_BYTES, 30.0, BUFFERED_BODIES * DEFAULT_MAX_REQUEST_BYTES)
    return build_rest_app(server.plane, limits), server


def measure_one(app_name: str, base: Path, kind: str, count: int) -> float:
    """One measurement of `app_name` ("floor" or "trainflow") in this process."""
    import floor_server

    apps = _APPS
    if app_name == "floor" and app_name not in apps:
        apps[app_name] = floor_server.model_app(base / "1" / "model.onnx")
    elif app_name not in apps:
        apps[app_name], server = trainflow_app(base)
        _SERVERS.append(server)
    body, headers = requests()[kind]
    return asyncio.run(cpu_us_per_request(apps[app_name], body, headers, count))


def baseline_worker(src: Path, base: Path) -> subprocess.Popen:
    """This script in a subprocess importing trainflow from `src`, answering one measurement per input line."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    argv = [sys.executable, __file__, "--worker", str(base)]
    return subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def ask(worker: subprocess.Popen, kind: str, count: int) -> float:
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(json.dumps({"kind": kind, "count": count}) + "\n")
    worker.stdin.flush()
    return float(worker.stdout.readline())


def stop_worker(worker: subprocess.Popen) -> None:
    assert worker.stdin is not None
    worker.stdin.close()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def serve_worker(base: Path) -> None:
    try:
        for line in sys.stdin:
            request = json.loads(line)
            print(measure_one("trainflow", base, request["kind"], request["count"]), flush=True)
    finally:
        for server in _SERVERS:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000, help="Requests per measurement.")
    parser.add_argument("--baseline-src", type=Path, help="Also the trainflow of this src folder (code before).")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    if args.worker:
        serve_worker(args.worker)
        return
    from serve import mlp_onnx, model_base

    with tempfile.TemporaryDirectory(prefix="serve-overhead-") as tmp:  # the model, removed however the run ends
        base = model_base(Path(tmp) / "mnist", mlp_onnx())
        worker = baseline_worker(args.baseline_src, base) if args.baseline_src else None
        try:
            names, runs = measure_rounds(args, base, worker)
        finally:
            if worker is not None:  # its input closed, it stops its server and ends
                stop_worker(worker)
            for server in _SERVERS:
                server.stop()
    report(args, names, runs)


def measure_rounds(
    args: argparse.Namespace, base: Path, worker: subprocess.Popen | None
) -> tuple[list[str], dict[tuple[str, str], list[float]]]:
    """Every app's CPU us per request, the apps alternating round by round."""
    names = ["floor", "trainflow", *(["before"] if worker else [])]
    runs: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for kind in KINDS:
            for name in names:
                cost = (
                    ask(worker, kind, args.requests)
                    if name == "before"
                    else measure_one(name, base, kind, args.requests)
                )
                runs.setdefault((kind, name), []).append(cost)
    return names, runs


def report(args: argparse.Namespace, names: list[str], runs: dict[tuple[str, str], list[float]]) -> None:
    load = os.getloadavg()[0]
    print(f"CPU us per request, {args.rounds} alternating rounds of {args.requests} requests; load average {load:.1f}")
    print("| request | server | CPU us / request (median) | floor / server per round (min / median) |")
    print("|---|---|---|---|")
    for kind in KINDS:
        for name in names:
            costs = runs[(kind, name)]
            ratios = [f / c for f, c in zip(runs[(kind, "floor")], costs, strict=True)]
            shown = "" if name == "floor" else f"{min(ratios):.2f}x / {statistics.median(ratios):.2f}x"
            print(f"| {kind} | {name} | {statistics.median(costs):.1f} | {shown} |")


if __name__ == "__main__":
    main()
