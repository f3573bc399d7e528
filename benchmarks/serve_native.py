"""`serve.py --load native`: trainflow, MLServer and the floors in one run, alternating cell by cell.

Every server runs for the whole run: the floors (floor_server.py --model --grpc-port: the JSON, binary and
gRPC floors in one process, as trainflow serves REST and gRPC from one), `trainflow serve` with its
defaults, MLServer (if installed) and, with --bare-floor, the fixed-reply floor that reads no request. Each
round measures every load (REST JSON and REST binary tensors with wrk, V2 gRPC with h2load) at c=1, 16 and
64 on every server that takes it, the servers one after another for each cell in an order that rotates, so
that the load other sessions put on the machine hits each alike. Per cell: req/s, p50, p99 and the server's
CPU seconds per 1,000 requests (its process tree); the ratios against the floor and against MLServer are the
medians of the per-round ratios (req/s: server / reference; CPU: reference / server, so 1.0x = as cheap,
higher is better for both).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LOADS = ("json", "binary", "grpc")
CONCURRENCY = (1, 16, 64)
MLSERVER = "MLServer"
FLOOR = "floor"


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    rest: str
    grpc: str
    loads: tuple[str, ...] = LOADS
    runs: dict[str, list[dict]] = field(default_factory=dict)


@dataclass
class Requests:
    json: bytes
    binary: bytes
    binary_headers: dict[str, str]
    grpc: bytes


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def describe_code(repo: Path) -> str:
    """The commit measured, and the files of the serving code that differ from it (the server runs the working tree)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", "src/trainflow/serving"], cwd=repo, capture_output=True, text=True
    )
    changed = [line[3:] for line in status.stdout.splitlines()]
    return commit.stdout.strip() + (f" (uncommitted: {', '.join(changed)})" if changed else "")


def mlserver_version(venv: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('mlserver'))"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def measure(server: Server, kind: str, concurrency: int, requests: Requests, seconds: float) -> dict:
    from native_load import h2load, wrk

    if kind == "grpc":
        url = f"http://{server.grpc}/inference.GRPCInferenceService/ModelInfer"
        return h2load(url, requests.grpc, concurrency, seconds, server.proc.pid)
    url = f"http://{server.rest}/v2/models/mnist/infer"
    if kind == "json":
        return wrk(url, requests.json, concurrency, seconds, server.proc.pid)
    return wrk(url, requests.binary, concurrency, seconds, server.proc.pid, requests.binary_headers)


def classes(server: Server, kind: str, requests: Requests) -> list[int]:
    """The classes one request of `kind` gets from `server`, checked to be a V2 answer; RuntimeError if not."""
    import grpc
    import httpx

    from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as pb

    if kind == "grpc":
        with grpc.insecure_channel(server.grpc) as channel:
            call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            reply = pb.ModelInferResponse.FromString(call(requests.grpc, timeout=30))
        for index, output in enumerate(reply.outputs):
            if output.name == "classes":
                if reply.raw_output_contents:
                    return np.frombuffer(reply.raw_output_contents[index], dtype=np.int64).tolist()
                return list(output.contents.int64_contents)
        raise RuntimeError(f"{server.name} gRPC answered without a classes output")
    body, headers = (requests.json, None) if kind == "json" else (requests.binary, requests.binary_headers)
    answer = httpx.post(f"http://{server.rest}/v2/models/mnist/infer", content=body, headers=headers, timeout=30)
    if answer.status_code != 200:
        raise RuntimeError(f"{server.name} {kind} answered {answer.status_code}: {answer.text[:200]}")
    for output in answer.json().get("outputs", []):
        if output["name"] == "classes":
            return [int(x) for x in output["data"]]
    raise RuntimeError(f"{server.name} {kind} answered without a classes output: {answer.text[:200]}")


def check(servers: list[Server], requests: Requests) -> None:
    """Every server answers every load it takes with the same classes; a server that refuses binary tensors
    (MLServer's REST has no binary tensor extension) is measured without them, and the reason printed."""
    expected: list[int] | None = None
    for server in servers:
        taken = []
        for kind in server.loads:
            try:
                got = classes(server, kind, requests)
            except RuntimeError as exc:
                if kind != "binary":
                    raise
                print(f"  {server.name}: no binary tensors ({exc})", flush=True)
                continue
            if server.name != "bare floor":
                expected = got if expected is None else expected
                if got != expected:
                    raise RuntimeError(f"{server.name} {kind} answered classes {got}, others {expected}")
            taken.append(kind)
        server.loads = tuple(taken)


def trainflow_errors(server: Server) -> str:
    """trainflow's own count of failed requests by protocol and kind: h2load counts HTTP 200s, and a gRPC error
    travels in a 200's trailers, so this is what shows a failed gRPC call under load."""
    import httpx

    text = httpx.get(f"http://{server.rest}/metrics", timeout=30).text
    failed = [line for line in text.splitlines() if line.startswith("trainflow_request_errors_total{")]
    return "; ".join(failed) if failed else "none"


def warm(servers: list[Server], requests: Requests) -> None:
    """One second of each load at c=16 on each server, not counted: first connections, caches, lazy imports."""
    for server in servers:
        for kind in server.loads:
            measure(server, kind, 16, requests, 1)


def rounds(servers: list[Server], requests: Requests, count: int, seconds: float) -> None:
    cells = [(kind, c) for c in CONCURRENCY for kind in LOADS]
    turn = 0
    for number in range(1, count + 1):
        for kind, c in cells:
            turn += 1
            order = servers[turn % len(servers) :] + servers[: turn % len(servers)]
            for server in order:
                if kind not in server.loads:
                    continue
                result = measure(server, kind, c, requests, seconds)
                server.runs.setdefault(f"{kind}-c{c}", []).append(result)
                print(f"  round {number} {server.name:10} {kind:6} c={c:<2} {fmt(result)}", flush=True)
        print(f"round {number} done, load average {load_average()}", flush=True)


def fmt(r: dict) -> str:
    errors = f"  errors {r['errors']}" if r.get("errors") else ""
    return (
        f"p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms  {r['rps']:7.0f} req/s  "
        f"cpu {r['cpu_s_per_1k']:.3f} s/1k{errors}"
    )


def ratios(ours: list[dict], theirs: list[dict]) -> str:
    """Medians (min-max) of the per-round req/s ratio ours/theirs and CPU ratio theirs/ours."""
    rps = [o["rps"] / t["rps"] for o, t in zip(ours, theirs, strict=True)]
    cpu = [t["cpu_s_per_1k"] / o["cpu_s_per_1k"] for o, t in zip(ours, theirs, strict=True)]
    return (
        f"{statistics.median(rps):.2f}x ({min(rps):.2f}-{max(rps):.2f}) | "
        f"{statistics.median(cpu):.2f}x ({min(cpu):.2f}-{max(cpu):.2f})"
    )


def report(servers: list[Server], count: int) -> None:
    by_name = {s.name: s for s in servers}
    floor, theirs = by_name[FLOOR], by_name.get(MLSERVER)
    print(f"\nMedians of {count} alternating rounds; ratios: median of the per-round ratios (min-max).")
    print(
        "| load | server | req/s | p50 ms | p99 ms | CPU s / 1k req | req/s vs floor | CPU vs floor (floor / server) | "
        "req/s vs MLServer | CPU vs MLServer (MLServer / server) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in CONCURRENCY:
        for kind in LOADS:
            key = f"{kind}-c{c}"
            for server in servers:
                runs = server.runs.get(key)
                if not runs:
                    continue
                med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p99_ms", "cpu_s_per_1k")}
                errors = sum(r["errors"] for r in runs)
                vs_floor = ratios(runs, floor.runs[key]) if server is not floor and key in floor.runs else "|"
                vs_ml = (
                    ratios(runs, theirs.runs[key])
                    if theirs is not None and server is not theirs and key in theirs.runs
                    else "|"
                )
                label = server.name + (f" ({errors} errors)" if errors else "")
                print(
                    f"| {kind} c={c} | {label} | {med['rps']:.0f} | {med['p50_ms']:.2f} | {med['p99_ms']:.2f} | "
                    f"{med['cpu_s_per_1k']:.3f} | {vs_floor} | {vs_ml} |"
                )


def run(args: argparse.Namespace, work: Path, base: Path, model_path: Path, image: np.ndarray) -> None:
    import serve
    from native_load import missing_tools

    if missing := missing_tools():
        sys.exit(f"{', '.join(missing)} not found: apt-get install wrk nghttp2-client")
    json_body, grpc_message = serve.v2_requests(image)
    binary_body, header_length = serve.v2_binary_request(image)
    requests = Requests(
        json=json_body,
        binary=binary_body,
        binary_headers={
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": str(header_length),
        },
        grpc=grpc_message,
    )
    servers: list[Server] = []
    try:
        rest_port, grpc_port = serve.free_port(), serve.free_port()
        argv = [sys.executable, str(serve.REPO / "benchmarks" / "floor_server.py"), "--model", str(model_path)]
        argv += ["--rest-port", str(rest_port), "--grpc-port", str(grpc_port)]
        rest, grpc_address = f"127.0.0.1:{rest_port}", f"127.0.0.1:{grpc_port}"
        servers.append(Server(FLOOR, serve.run_server(argv, rest), rest, grpc_address))
        servers.append(Server("trainflow", *serve.trainflow_server(base)))
        if serve.mlserver_wanted(args):
            servers.append(Server(MLSERVER, *serve.mlserver(model_path, work)))
        if args.bare_floor:
            rest_reply, grpc_reply = serve.check_answers(
                "trainflow", servers[1].rest, servers[1].grpc, json_body, grpc_message
            )
            servers.append(
                Server("bare floor", *serve.floor_server(work, rest_reply, grpc_reply), loads=("json", "grpc"))
            )
        versions = (
            f", MLServer {mlserver_version(serve.MLSERVER_VENV)}" if MLSERVER in {s.name for s in servers} else ""
        )
        print(
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: trainflow at {describe_code(serve.REPO)}{versions}, "
            f"{args.rounds} rounds of {args.seconds:g} s cells, load average {load_average()}",
            flush=True,
        )
        check(servers, requests)
        warm(servers, requests)
        rounds(servers, requests, args.rounds, args.seconds)
        print(f"trainflow's failed requests (its metrics): {trainflow_errors(servers[1])}", flush=True)
    finally:
        for server in servers:
            serve.stop_server(server.proc)
    report(servers, args.rounds)
    print(f"load average at the end: {load_average()}")
