"""Soak: `trainflow serve` under a bounded mixed load for a set time, with hot swaps, bad requests and slow clients.

One server process (`trainflow serve`, the CLI defaults except a 2 s body timeout so that slow uploads end
often) and, from this process, at the same time:
  - good requests: TF Serving REST (1 and 8 images), V2 REST JSON and binary, TF Serving gRPC, V2 gRPC,
    and now and then a heavy one (1000 images, 7 MB of JSON);
  - bad requests: malformed JSON, strings and booleans as pixels, wrong shapes and ranks, unknown models,
    a 9000x9000 PNG bomb, garbage base64 (REST), and wrong dtypes, ranks and names over gRPC;
  - slow uploads: one connection at a time trickling a body until the server answers 408;
  - health and /metrics polls, timed from a process of their own (the load threads' GIL is not theirs);
  - 5 hot swaps spread over the run (versions 2-6), version 4 corrupt.
Reports requests and failures by kind, p99 latencies, the event loop's worst lag (the server measures it
and exposes it in /metrics), and the server's RSS at start, minute 1 and end.

    .venv/bin/python benchmarks/soak.py [--seconds 300] [--clients 2]
"""

from __future__ import annotations

import argparse
import base64
import collections
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "serving"))

from hostile_images import bilevel_png
from serve import free_port, mlp_onnx, wait_ready

from trainflow.export.signature import MODEL_FILE, SIGNATURE_FILE, image_classifier_signature
from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as v2
from trainflow.serving.protos.kserve import grpc_predict_v2_pb2_grpc as v2_grpc
from trainflow.serving.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from trainflow.serving.protos.tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

IMAGE = np.random.default_rng(0).random(784, dtype=np.float32)
HEAVY_BODY = orjson.dumps({"signature_name": "predict_images", "instances": [IMAGE.tolist()] * 1000})
GRPC_CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}


class Tally:
    """Requests, failures by kind and latencies, shared by the load threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter()
        self.failures: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.latencies: dict[str, list[float]] = collections.defaultdict(list)

    def record(self, kind: str, seconds: float, failure: str | None) -> None:
        with self.lock:
            self.requests[kind] += 1
            self.latencies[kind].append(seconds)
            if failure is not None:
                self.failures[kind][failure[:120]] += 1


def publish(base: Path, version: int, model: bytes) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
    (tmp / MODEL_FILE).write_bytes(model)
    (tmp / SIGNATURE_FILE).write_text(image_classifier_signature().to_json())
    os.rename(tmp, base / str(version))


def tfs_tensor(values: np.ndarray, dtype: int = types_pb2.DT_FLOAT) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in values.shape])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, tensor_content=values.tobytes())


def good_rest(client: httpx.Client, turn: int) -> str | None:
    """One good REST request of the `turn`-th kind; None when the answer is right, else what was wrong."""
    if turn % 4 in (0, 1):
        count = 1 if turn % 4 == 0 else 8
        response = client.post(
            "/v1/models/mnist:predict", json={"signature_name": "predict_images", "instances": [IMAGE.tolist()] * count}
        )
        ok = response.status_code == 200 and len(response.json()["predictions"]) == count
    elif turn % 4 == 2:
        response = client.post(
            "/v2/models/mnist/infer",
            json={"inputs": [{"name": "images", "shape": [1, 784], "datatype": "FP32", "data": IMAGE.tolist()}]},
        )
        ok = response.status_code == 200 and len(response.json()["outputs"]) == 2
    else:
        header = orjson.dumps(
            {
                "inputs": [
                    {"name": "images", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 3136}}
                ]
            }
        )
        response = client.post(
            "/v2/models/mnist/infer",
            content=header + IMAGE.tobytes(),
            headers={"Inference-Header-Content-Length": str(len(header))},
        )
        ok = response.status_code == 200
    return None if ok else f"{response.status_code} {response.text[:80]}"


def heavy_rest(client: httpx.Client, turn: int) -> str | None:
    """1000 images in one 7 MB JSON body: parsing and running it must not hold up anyone else."""
    response = client.post("/v1/models/mnist:predict", content=HEAVY_BODY, headers={"Content-Type": "application/json"})
    ok = response.status_code == 200 and len(response.json()["predictions"]) == 1000
    return None if ok else f"{response.status_code} {response.text[:80]}"


def good_grpc(channel: grpc.Channel, turn: int) -> str | None:
    if turn % 2 == 0:
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "mnist", "predict_images"
        request.inputs["images"].CopyFrom(tfs_tensor(IMAGE[None]))
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        return None if len(response.outputs["classes"].int64_val) == 1 else "wrong answer"
    infer = v2.ModelInferRequest(model_name="mnist", raw_input_contents=[IMAGE.tobytes()])
    infer.inputs.add(name="images", datatype="FP32", shape=[1, 784])
    answer = v2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(infer, timeout=30)
    return None if len(answer.outputs) == 2 else "wrong answer"


def bad_rest_requests() -> list[tuple[str, bytes]]:
    image = IMAGE.tolist()
    bodies: list[tuple[str, object]] = [
        ("/v1/models/mnist:predict", b"{not json"),
        ("/v1/models/mnist:predict", {"instances": [["0.1"] * 784]}),
        ("/v1/models/mnist:predict", {"instances": [[True] * 784]}),
        ("/v1/models/mnist:predict", {"instances": [image[:100]]}),
        ("/v1/models/mnist:predict", {"instances": [{"b64": base64.b64encode(bilevel_png(9000, 9000)).decode()}]}),
        ("/v1/models/mnist:predict", {"instances": [{"b64": "!!"}]}),
        ("/v1/models/other:predict", {"instances": [image]}),
        (
            "/v2/models/mnist/infer",
            {"inputs": [{"name": "images", "shape": [1] * 70 + [784], "datatype": "FP32", "data": image}]},
        ),
        (
            "/v2/models/mnist/infer",
            {"inputs": [{"name": "images", "shape": [1, 784], "datatype": "BOOL", "data": [True] * 784}]},
        ),
    ]
    return [(path, body if isinstance(body, bytes) else orjson.dumps(body)) for path, body in bodies]


def bad_grpc(channel: grpc.Channel, turn: int) -> grpc.StatusCode:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "other" if turn % 3 == 0 else "mnist"
    request.model_spec.signature_name = "predict_images"
    values = IMAGE.reshape([1] * 9 + [784]) if turn % 3 == 1 else IMAGE[None]
    request.inputs["images"].CopyFrom(tfs_tensor(values, types_pb2.DT_STRING if turn % 3 == 2 else types_pb2.DT_FLOAT))
    try:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def slow_upload(port: int) -> str | None:
    """A body trickled a byte every 0.5 s until the server gives up on it; None if that ends in a 408."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
        data = b""
        sock.settimeout(0.5)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            except TimeoutError:
                try:
                    sock.send(b" ")
                except OSError:
                    pass
            except ConnectionResetError:
                break
    return None if data.startswith(b"HTTP/1.1 408") else f"got {data[:40]!r}"


def run_load(stop: threading.Event, tally: Tally, rest: str, grpc_address: str, clients: int) -> list[threading.Thread]:
    port = int(rest.rsplit(":", 1)[1])

    def loop(kind: str, step: Callable[[int], str | None], pause: float = 0.0) -> None:
        turn = 0
        while not stop.is_set():
            start = time.perf_counter()
            try:
                failure = step(turn)
            except Exception as exc:  # noqa: BLE001 - every failure is counted by kind, never dropped
                failure = f"{type(exc).__name__}: {exc}"
            tally.record(kind, time.perf_counter() - start, failure)
            turn += 1
            if pause:
                stop.wait(pause)

    def rest_loop(kind: str, step: Callable[[httpx.Client, int], str | None], pause: float = 0.0) -> None:
        with httpx.Client(base_url=f"http://{rest}", timeout=30) as client:
            loop(kind, lambda turn: step(client, turn), pause)

    def grpc_loop(kind: str, step: Callable[[grpc.Channel, int], str | None], pause: float = 0.0) -> None:
        with grpc.insecure_channel(grpc_address) as channel:
            loop(kind, lambda turn: step(channel, turn), pause)

    bad = bad_rest_requests()

    def bad_rest(client: httpx.Client, turn: int) -> str | None:
        path, body = bad[turn % len(bad)]
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        return None if 400 <= response.status_code < 500 else f"{path} -> {response.status_code}"

    def bad_grpc_step(channel: grpc.Channel, turn: int) -> str | None:
        code = bad_grpc(channel, turn)
        return None if code in GRPC_CLIENT_ERRORS else f"turn {turn % 3} -> {code.name}"

    workers = [(rest_loop, ("good-rest", good_rest)), (grpc_loop, ("good-grpc", good_grpc))] * clients + [
        (rest_loop, ("heavy-rest", heavy_rest, 0.5)),
        (rest_loop, ("bad-rest", bad_rest, 0.01)),
        (grpc_loop, ("bad-grpc", bad_grpc_step, 0.01)),
        (loop, ("slow-upload", lambda turn: slow_upload(port))),
    ]
    threads = [threading.Thread(target=target, args=args, daemon=True) for target, args in workers]
    for thread in threads:
        thread.start()
    return threads


def swap_versions(stop: threading.Event, base: Path, seconds: float, log: list[str]) -> None:
    """Versions 2..6 at even intervals; version 4 is corrupt and must be refused while 3 keeps serving."""
    started = time.monotonic()
    for index, version in enumerate(range(2, 7)):
        if stop.wait(max(0.0, seconds * (index + 1) / 6 - (time.monotonic() - started))):
            return
        publish(base, version, b"corrupt: not an ONNX model" if version == 4 else mlp_onnx(hidden=100 + version))
        log.append(
            f"{time.monotonic() - started:6.1f} s: published version {version}" + (" (corrupt)" if version == 4 else "")
        )


def probe(rest: str, seconds: float) -> None:
    """The probe process: GET /v2/health/live every 20 ms and /metrics every second; prints what it saw as JSON."""
    seen = []
    with httpx.Client(base_url=f"http://{rest}", timeout=30) as client:
        started, ticks = time.monotonic(), 0
        while time.monotonic() - started < seconds:
            ticks += 1
            for kind, path in [("health", "/v2/health/live")] + [("metrics", "/metrics")] * (ticks % 50 == 0):
                start = time.perf_counter()
                try:
                    failure = None if client.get(path).status_code == 200 else "not 200"
                except httpx.HTTPError as exc:
                    failure = f"{type(exc).__name__}: {exc}"
                seen.append((kind, time.perf_counter() - start, failure))
            time.sleep(0.02)
    print(orjson.dumps(seen).decode())


def loop_lag(metrics: str) -> tuple[float, float]:
    """The worst lag and the share of 50 ms ticks that woke more than 10 ms late, from /metrics."""
    values = {}
    for line in metrics.splitlines():
        if line.startswith("trainflow_event_loop_lag"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    total = values.get('trainflow_event_loop_lag_seconds_count{loop="rest"}', 0.0)
    within = values.get('trainflow_event_loop_lag_seconds_bucket{le="0.01",loop="rest"}', 0.0)
    return values.get('trainflow_event_loop_lag_max_seconds{loop="rest"}', float("nan")), (
        (1 - within / total) if total else 0.0
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3 if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to run the load (default 300)")
    parser.add_argument("--clients", type=int, default=2, help="threads per good-request kind (default 2)")
    parser.add_argument("--probe", metavar="HOST:PORT", help=argparse.SUPPRESS)  # the health probe process
    args = parser.parse_args()
    if args.probe:
        probe(args.probe, args.seconds)
        return
    work = Path(tempfile.mkdtemp(prefix="trainflow-soak-"))
    base = work / "mnist"
    base.mkdir()
    publish(base, 1, mlp_onnx())
    rest, grpc_address = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log_file = open(work / "server.log", "wb")  # noqa: SIM115 - the server process writes it until stopped
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainflow",
            "--log-level",
            "WARNING",
            "serve",
            "--model-base-path",
            str(base),
            "--rest-port",
            rest.split(":")[1],
            "--grpc-port",
            grpc_address.split(":")[1],
            "--body-timeout-seconds",
            "2",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(rest, server)
        report(soak(server, base, rest, grpc_address, args), args, work)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log_file.close()


def soak(server: subprocess.Popen, base: Path, rest: str, grpc_address: str, args: argparse.Namespace) -> dict:
    process = psutil.Process(server.pid)
    tally, stop, swaps = Tally(), threading.Event(), []
    rss = [(0.0, process.memory_info().rss)]
    prober = subprocess.Popen(
        [sys.executable, __file__, "--probe", rest, "--seconds", str(args.seconds)], stdout=subprocess.PIPE
    )
    threads = run_load(stop, tally, rest, grpc_address, args.clients)
    swapper = threading.Thread(target=swap_versions, args=(stop, base, args.seconds, swaps), daemon=True)
    swapper.start()
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < args.seconds and server.poll() is None:
        time.sleep(1.0)
        rss.append((elapsed, process.memory_info().rss))
    stop.set()
    for thread in [*threads, swapper]:
        thread.join(timeout=60)
    for kind, seconds, failure in orjson.loads(prober.communicate(timeout=60)[0]):
        tally.record(kind, seconds, failure)
    metrics = httpx.get(f"http://{rest}/metrics").text
    versions = httpx.get(f"http://{rest}/v1/models/mnist").json()["model_version_status"]
    return {
        "tally": tally,
        "rss": rss,
        "swaps": swaps,
        "lag": loop_lag(metrics),
        "alive": server.poll() is None,
        "versions": sorted(int(v["version"]) for v in versions),
        "elapsed": time.monotonic() - started,
    }


def report(result: dict, args: argparse.Namespace, work: Path) -> None:
    tally: Tally = result["tally"]
    print(f"\nsoak: {result['elapsed']:.0f} s, {args.clients} clients per good kind, server log {work / 'server.log'}")
    for line in result["swaps"]:
        print("  " + line)
    print(f"  versions loaded at the end: {result['versions']} (expected [5, 6]); server alive: {result['alive']}")
    print("\n| kind | requests | failures | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|")
    for kind in ("good-rest", "heavy-rest", "good-grpc", "bad-rest", "bad-grpc", "slow-upload", "health", "metrics"):
        latencies = tally.latencies[kind]
        print(
            f"| {kind} | {tally.requests[kind]} | {sum(tally.failures[kind].values())} | "
            f"{percentile(latencies, 50):.1f} | {percentile(latencies, 99):.1f} | {percentile(latencies, 100):.1f} |"
        )
    for kind, reasons in tally.failures.items():
        for reason, count in reasons.most_common(5):
            print(f"  failure {kind}: {count} x {reason}")
    rss = result["rss"]
    minute = next((value for at, value in rss if at >= min(60.0, args.seconds / 3)), rss[-1][1])
    growth = (rss[-1][1] - minute) / minute
    worst_lag, late_share = result["lag"]
    health_p99 = percentile(tally.latencies["health"], 99)
    good_failures = sum(sum(tally.failures[kind].values()) for kind in ("good-rest", "heavy-rest", "good-grpc"))
    print(f"\nevent loop: worst lag {worst_lag * 1e3:.0f} ms, {late_share:.2%} of 50 ms ticks more than 10 ms late")
    print(
        f"server RSS: start {rss[0][1] / 2**20:.0f} MB, minute 1 {minute / 2**20:.0f} MB, end "
        f"{rss[-1][1] / 2**20:.0f} MB ({growth:+.1%} from minute 1)"
    )
    print(
        f"goals: failed good requests {good_failures} (0) {'ok' if good_failures == 0 else 'MISSED'}; "
        f"health p99 {health_p99:.1f} ms (< 50) {'ok' if health_p99 < 50 else 'MISSED'}; "
        f"RSS growth {growth:+.1%} (< 10%) {'ok' if growth < 0.10 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
