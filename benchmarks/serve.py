"""Model server throughput and latency: trainflow serve against MLServer 1.7 and against the floors.

Same ONNX model throughout (the example's MLP: 784-100-10, softmax and argmax), one image per request.
Two kinds of load:
  native       wrk (V2 REST: JSON and binary tensors) and h2load (V2 gRPC, a pre-encoded ModelInferRequest), C
               programs that cost the shared 2 cores little, at concurrency 1, 16 and 64, against
                 floors:    the same stacks parsing the request, running the same ONNX Runtime session and
                            encoding the reply, nothing else (floor_server.py --model --grpc-port: the JSON,
                            binary and gRPC floors; grpc_floor.py); --bare-floor: also the fixed reply,
                 trainflow: `trainflow serve` defaults,
                 MLServer:  `mlserver start` with a runtime wrapping the same ONNX Runtime session
                            (benchmarks/mlserver_onnx_runtime.py), default settings otherwise (its REST has
                            no binary tensor extension: JSON and gRPC only),
               all running at once, measured one after another for each cell in --rounds alternating rounds
               (serve_native.py); reports req/s, p50/p99, the server's CPU seconds per 1,000 requests and
               the medians of the per-round ratios against the floor and MLServer; then batching;
  batching     the built-in CNN and a wide MLP at concurrency 64, dynamic batching off and on, in
               alternating rounds (also after native unless --no-batching);
  floors       trainflow against the JSON floor and the binary floor (floor_server.py --model: parse with
               orjson into numpy, the same ONNX Runtime session, encode the reply, nothing else) over REST
               with wrk at c=1, 16 and 64, JSON and binary-tensor bodies, --rounds alternating rounds
               (--baseline-src: also another checkout's src, the code before a change, in the same rounds);
  tritonclient Python clients in this process (V2 REST JSON, V2 gRPC) at concurrency 1 and 16, and
               ONNX Runtime in-process, batch 1.

    apt-get install wrk nghttp2-client
    python3 -m venv benchmarks/.venvs/mlserver
    benchmarks/.venvs/mlserver/bin/pip install "mlserver==1.7.*" onnxruntime "uvloop<0.22"
    .venv/bin/python benchmarks/serve.py [--load native|tritonclient|both|inline|batching|floors] [--seconds 5] [--rounds 3] [--skip-mlserver]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from onnx import TensorProto, helper, numpy_helper

if TYPE_CHECKING:
    from trainflow.serving.server import ModelServer

REPO = Path(__file__).resolve().parents[1]
MLSERVER_VENV = REPO / "benchmarks" / ".venvs" / "mlserver"
CONCURRENCY = (1, 16)


def mlp_onnx(hidden: int = 100) -> bytes:
    rng = np.random.default_rng(0)
    weights = {
        "W1": rng.normal(0, 0.05, (784, hidden)),
        "B1": np.zeros(hidden),
        "W2": rng.normal(0, 0.1, (hidden, 10)),
        "B2": np.zeros(10),
    }
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["images", "W1", "B1"], ["h"]),
            helper.make_node("Relu", ["h"], ["a"]),
            helper.make_node("Gemm", ["a", "W2", "B2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
            helper.make_node("ArgMax", ["scores"], ["classes"], axis=1, keepdims=0),
        ],
        "mlp",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 784])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10]),
            helper.make_tensor_value_info("classes", TensorProto.INT64, ["N"]),
        ],
        initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(rest: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://{rest}/v2/models/mnist/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server not ready in time")


def floor(model_path: Path, image: np.ndarray, requests: int) -> dict[str, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    for _ in range(200):
        session.run(["scores", "classes"], {"images": image})
    latencies = []
    for _ in range(requests * 4):
        start = time.perf_counter()
        session.run(["scores", "classes"], {"images": image})
        latencies.append(time.perf_counter() - start)
    return summary(latencies, sum(latencies))


def summary(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = np.sort(np.array(latencies))
    return {
        "p50_ms": float(np.percentile(ordered, 50) * 1e3),
        "p99_ms": float(np.percentile(ordered, 99) * 1e3),
        "rps": len(latencies) / seconds,
    }


def load(protocol: str, address: str, image: np.ndarray, concurrency: int, requests: int) -> dict[str, float]:
    """`requests` requests in all, from `concurrency` threads with one tritonclient each."""
    import tritonclient.grpc as tgrpc
    import tritonclient.http as thttp

    module = thttp if protocol == "rest" else tgrpc
    per_thread = max(1, requests // concurrency)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    barrier = threading.Barrier(concurrency + 1)

    def worker(index: int) -> None:
        client = module.InferenceServerClient(address)
        infer_input = module.InferInput("images", [1, 784], "FP32")
        if module is thttp:  # JSON tensors: MLServer does not take Triton's binary extension
            infer_input.set_data_from_numpy(image, binary_data=False)
        else:
            infer_input.set_data_from_numpy(image)
        try:
            for _ in range(20):  # warm the connection
                client.infer("mnist", [infer_input])
        except Exception as exc:
            errors.append(f"warm-up: {exc}")
            barrier.abort()
            raise
        barrier.wait()
        mine = latencies[index]
        for _ in range(per_thread):
            start = time.perf_counter()
            try:
                client.infer("mnist", [infer_input]).as_numpy("classes")
            except Exception as exc:  # noqa: BLE001 - counted and reported, never silently dropped
                errors.append(str(exc)[:200])
            mine.append(time.perf_counter() - start)
        client.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        raise RuntimeError(f"{protocol} load failed: {errors[:1]}") from None
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    result = summary([x for xs in latencies for x in xs], time.perf_counter() - started)
    result["errors"] = len(errors)
    return result


def run_server(argv: list[str], rest: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(rest, proc)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(f"{argv[0]} failed: {proc.stderr.read().decode()[-2000:]}") from None
    return proc


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure(name: str, proc: subprocess.Popen, rest: str, grpc: str, image: np.ndarray, requests: int) -> dict:
    """tritonclient load on one server, which is stopped afterwards."""
    results = {}
    try:
        for protocol, address in (("rest", rest), ("grpc", grpc)):
            for concurrency in CONCURRENCY:
                results[f"{protocol}-c{concurrency}"] = load(protocol, address, image, concurrency, requests)
                print(
                    f"  {name:9} {protocol:4} c={concurrency:<2} {fmt(results[f'{protocol}-c{concurrency}'])}",
                    flush=True,
                )
    finally:
        stop_server(proc)
    return results


def fmt(r: dict) -> str:
    errors = f"  errors {r['errors']}" if r.get("errors") else ""
    return f"p50 {r['p50_ms']:6.3f} ms  p99 {r['p99_ms']:6.3f} ms  {r['rps']:8.0f} req/s{errors}"


def trainflow_server(base: Path, *flags: str, src: Path | None = None) -> tuple[subprocess.Popen, str, str]:
    """`trainflow serve` on free ports; `src`: another checkout's src folder (the code before a change)."""
    rest, grpc = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    argv = [
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
        grpc.split(":")[1],
        *flags,
    ]
    env = None if src is None else {**os.environ, "PYTHONPATH": str(src)}
    return run_server(argv, rest, env=env), rest, grpc


def mlserver(model_path: Path, work: Path) -> tuple[subprocess.Popen, str, str]:
    rest_port, grpc_port = free_port(), free_port()
    root = work / "mlserver"
    (root / "mnist").mkdir(parents=True)
    shutil.copy(model_path, root / "mnist" / "model.onnx")
    shutil.copy(REPO / "benchmarks" / "mlserver_onnx_runtime.py", root / "mnist" / "mlserver_onnx_runtime.py")
    (root / "mnist" / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "mnist",
                "implementation": "mlserver_onnx_runtime.OnnxClassifier",
                "parameters": {"uri": str(root / "mnist" / "model.onnx")},
            }
        )
    )
    (root / "settings.json").write_text(
        json.dumps({"http_port": rest_port, "grpc_port": grpc_port, "metrics_port": free_port(), "debug": False})
    )
    env = {**os.environ, "PATH": f"{MLSERVER_VENV / 'bin'}:{os.environ['PATH']}"}
    argv = [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(root)]
    return (
        run_server(argv, f"127.0.0.1:{rest_port}", cwd=root, env=env),
        f"127.0.0.1:{rest_port}",
        f"127.0.0.1:{grpc_port}",
    )


def floor_server(work: Path, rest_reply: bytes, grpc_reply: bytes) -> tuple[subprocess.Popen, str, str]:
    (work / "reply.json").write_bytes(rest_reply)
    (work / "reply.bin").write_bytes(grpc_reply)
    rest_port, grpc_port = free_port(), free_port()
    argv = [
        sys.executable,
        str(REPO / "benchmarks" / "floor_server.py"),
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(grpc_port),
        "--rest-reply",
        str(work / "reply.json"),
        "--grpc-reply",
        str(work / "reply.bin"),
    ]
    return run_server(argv, f"127.0.0.1:{rest_port}"), f"127.0.0.1:{rest_port}", f"127.0.0.1:{grpc_port}"


def v2_requests(image: np.ndarray) -> tuple[bytes, bytes]:
    """The V2 request every native load sends: JSON for REST, a serialized ModelInferRequest for gRPC."""
    from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as pb

    body = json.dumps(
        {"inputs": [{"name": "images", "shape": list(image.shape), "datatype": "FP32", "data": image.ravel().tolist()}]}
    ).encode()
    request = pb.ModelInferRequest(
        model_name="mnist",
        inputs=[pb.ModelInferRequest.InferInputTensor(name="images", datatype="FP32", shape=list(image.shape))],
    )
    request.raw_input_contents.append(image.astype(np.float32).tobytes())
    return body, request.SerializeToString()


def check_answers(name: str, rest: str, grpc_address: str, body: bytes, message: bytes) -> tuple[bytes, bytes]:
    """One request of each kind, answered as V2 says (h2load counts HTTP 200s, not gRPC status); the replies."""
    import grpc
    import httpx

    from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as pb

    answer = httpx.post(
        f"http://{rest}/v2/models/mnist/infer", content=body, headers={"content-type": "application/json"}, timeout=30
    )
    if answer.status_code != 200 or "outputs" not in answer.json():
        raise RuntimeError(f"{name} REST answered {answer.status_code}: {answer.text[:200]}")
    with grpc.insecure_channel(grpc_address) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        reply = call(message, timeout=30)
    if not pb.ModelInferResponse.FromString(reply).outputs:
        raise RuntimeError(f"{name} gRPC answered without outputs")
    return answer.content, reply


def native(
    name: str,
    server: tuple[subprocess.Popen, str, str],
    body: bytes,
    message: bytes,
    seconds: float,
    concurrency: tuple[int, ...] = (1, 16, 64),
) -> dict[str, dict]:
    """wrk and h2load against one server, which is stopped afterwards."""
    from native_load import h2load, wrk

    proc, rest, grpc_address = server
    results = {}
    try:
        check_answers(name, rest, grpc_address, body, message)
        for c in concurrency:
            results[f"rest-c{c}"] = wrk(f"http://{rest}/v2/models/mnist/infer", body, c, seconds, proc.pid)
            print(f"  {name:9} rest c={c:<2} {fmt_native(results[f'rest-c{c}'])}", flush=True)
            results[f"grpc-c{c}"] = h2load(
                f"http://{grpc_address}/inference.GRPCInferenceService/ModelInfer", message, c, seconds, proc.pid
            )
            print(f"  {name:9} grpc c={c:<2} {fmt_native(results[f'grpc-c{c}'])}", flush=True)
    finally:
        stop_server(proc)
    return results


def fmt_native(r: dict) -> str:
    return f"{fmt(r)}  cpu {r['cpu_s_per_1k']:.3f} s/1k req"


def model_base(base: Path, onnx_model: bytes) -> Path:
    """`base` as an export base whose version 1 is `onnx_model` with the image classifier's signature."""
    from trainflow.export.signature import SIGNATURE_FILE, image_classifier_signature

    (base / "1").mkdir(parents=True)
    (base / "1" / "model.onnx").write_bytes(onnx_model)
    (base / "1" / SIGNATURE_FILE).write_text(image_classifier_signature().to_json())
    return base


def loaded_server(base: Path) -> ModelServer:
    """The ModelServer `trainflow serve` runs on the export base `base`, its model loaded, without its ports."""
    from trainflow.serving.server import ModelServer, ServerConfig

    server = ModelServer(ServerConfig("mnist", str(base), rest_port=0, grpc_port=0))
    for repository in server.repositories:
        repository.start()
    if not server.wait_ready(60):
        raise RuntimeError("the model did not load")
    return server


def cnn_base(work: Path) -> Path:
    """A version directory with the built-in CNN (untrained weights: the cost is the same)."""
    import torch

    from trainflow.export.onnx_graph import to_onnx
    from trainflow.training.models import cnn

    torch.manual_seed(0)
    return model_base(work / "cnn", to_onnx(cnn()))


def report_batching(
    model: str, off: dict[str, list[dict]], on: dict[str, list[dict]], flags: list[str], rounds: int
) -> None:
    print(f"\n{model}, concurrency 64, dynamic batching off vs on ({' '.join(flags)}), median of {rounds} rounds:")
    print("| load | off req/s | off p99 ms | on req/s | on p99 ms | throughput on/off | p99 on/off |")
    print("|---|---|---|---|---|---|---|")
    for key in off:
        a, b = ({k: statistics.median(r[k] for r in runs[key]) for k in ("rps", "p99_ms")} for runs in (off, on))
        print(
            f"| {key} | {a['rps']:.0f} | {a['p99_ms']:.2f} | {b['rps']:.0f} | {b['p99_ms']:.2f} | "
            f"{b['rps'] / a['rps']:.2f}x | {b['p99_ms'] / a['p99_ms']:.2f}x |"
        )


def wide_base(work: Path) -> Path:
    """A version directory with a wide MLP (784-8192-10, 6.4M parameters): memory-bound at batch 1."""
    return model_base(work / "wide", mlp_onnx(hidden=8192))


def run_batching_ab(args: argparse.Namespace, work: Path, image: np.ndarray) -> None:
    """The built-in CNN and a wide MLP at concurrency 64 with dynamic batching off and on, in alternating rounds."""
    body, message = v2_requests(image)
    flags = ["--max-batch-size", "32", "--batch-timeout-micros", str(args.batch_timeout_micros)]
    for model, base in (("the built-in CNN", cnn_base(work)), ("a wide MLP (784-8192-10)", wide_base(work))):
        off: dict[str, list[dict]] = {}
        on: dict[str, list[dict]] = {}
        for _ in range(args.rounds):
            for runs, name, server_flags in ((off, "off", []), (on, "batching", flags)):
                server = trainflow_server(base, *server_flags)
                for key, result in native(name, server, body, message, args.seconds, (64,)).items():
                    runs.setdefault(key, []).append(result)
        report_batching(model, off, on, flags, args.rounds)


def report(floor_result: dict, ours: dict, theirs: dict | None) -> None:
    print("\n| setup | p50 ms | p99 ms | req/s | req/s vs MLServer | p99 vs MLServer |")
    print("|---|---|---|---|---|---|")
    print(
        f"| ONNX Runtime in-process, batch 1 | {floor_result['p50_ms']:.3f} | {floor_result['p99_ms']:.3f} | "
        f"{floor_result['rps']:.0f} | | |"
    )
    for key, r in ours.items():
        other = theirs.get(key) if theirs else None
        ratio = f"{r['rps'] / other['rps']:.2f}x" if other else "-"
        p99 = f"{r['p99_ms'] / other['p99_ms']:.2f}x" if other else "-"
        print(f"| trainflow {key} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['rps']:.0f} | {ratio} | {p99} |")
        if other:
            print(f"| MLServer {key} | {other['p50_ms']:.3f} | {other['p99_ms']:.3f} | {other['rps']:.0f} | | |")


def run_native(args: argparse.Namespace, work: Path, base: Path, model_path: Path, image: np.ndarray) -> None:
    """trainflow, MLServer and the floors in alternating rounds (serve_native.py), then batching."""
    import serve_native

    serve_native.run(args, work, base, model_path, image)
    if args.batching:
        run_batching_ab(args, work, image)


def v2_binary_request(image: np.ndarray) -> tuple[bytes, int]:
    """The V2 request with its tensor in the binary tensor extension: a JSON header, then the raw FP32 bytes."""
    raw = image.astype(np.float32).tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "images",
                    "shape": list(image.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    ).encode()
    return header + raw, len(header)


def model_floor_server(model_path: Path) -> tuple[subprocess.Popen, str, str]:
    """The JSON and binary floors: one server parsing, running the same ONNX session and encoding, nothing else."""
    rest_port = free_port()
    argv = [sys.executable, str(REPO / "benchmarks" / "floor_server.py"), "--rest-port", str(rest_port)]
    argv += ["--model", str(model_path)]
    return run_server(argv, f"127.0.0.1:{rest_port}"), f"127.0.0.1:{rest_port}", ""


def run_floors(args: argparse.Namespace, base: Path, model_path: Path, image: np.ndarray) -> None:
    """trainflow against the JSON floor (JSON tensors) and the binary floor (binary tensors) over REST, with wrk,
    at c=1, 16 and 64, the two servers alternating round by round."""
    from native_load import wrk

    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    json_body, _ = v2_requests(image)
    binary_body, header_length = v2_binary_request(image)
    loads = {
        "json": (json_body, None),
        "binary": (binary_body, {"Content-Type": "application/octet-stream",
                                 "Inference-Header-Content-Length": str(header_length)}),
    }  # fmt: skip
    servers = {"floor": lambda: model_floor_server(model_path), "trainflow": lambda: trainflow_server(base)}
    if args.baseline_src is not None:
        servers["before"] = lambda: trainflow_server(base, src=args.baseline_src)
    runs: dict[str, dict[str, list[dict]]] = {name: {} for name in servers}
    for _ in range(args.rounds):
        for name, start in servers.items():
            proc, rest, _ = start()
            try:
                check_rest(name, rest, loads)
                for c in (1, 16, 64):
                    for kind, (body, headers) in loads.items():
                        url = f"http://{rest}/v2/models/mnist/infer"
                        result = wrk(url, body, c, args.seconds, proc.pid, headers)
                        runs[name].setdefault(f"{kind}-c{c}", []).append(result)
                        print(f"  {name:9} {kind:6} c={c:<2} {fmt_native(result)}", flush=True)
            finally:
                stop_server(proc)
    report_floors(runs, args.rounds)


def check_rest(name: str, rest: str, loads: dict[str, tuple[bytes, dict[str, str] | None]]) -> None:
    import httpx

    for kind, (body, headers) in loads.items():
        answer = httpx.post(f"http://{rest}/v2/models/mnist/infer", content=body, headers=headers, timeout=30)
        if answer.status_code != 200 or "outputs" not in answer.json():
            raise RuntimeError(f"{name} {kind} answered {answer.status_code}: {answer.text[:200]}")


def report_floors(runs: dict[str, dict[str, list[dict]]], rounds: int) -> None:
    print(f"\nREST, trainflow against the JSON and binary floors, {rounds} alternating rounds (min / median):")
    print("| load | server | floor req/s | server req/s | server / floor (per round: min / median) | "
          "floor p99 ms | server p99 ms | CPU s / 1k req floor / server |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")

    def median(r: list[dict], k: str) -> float:
        return statistics.median(x[k] for x in r)

    for key, floor_runs in runs["floor"].items():
        for variant in [v for v in runs if v != "floor"]:
            ours = runs[variant][key]
            ratios = [o["rps"] / f["rps"] for o, f in zip(ours, floor_runs, strict=True)]
            print(
                f"| {key} | {variant} | {median(floor_runs, 'rps'):.0f} | {median(ours, 'rps'):.0f} | "
                f"{min(ratios):.2f}x / {statistics.median(ratios):.2f}x | {median(floor_runs, 'p99_ms'):.2f} | "
                f"{median(ours, 'p99_ms'):.2f} | {median(floor_runs, 'cpu_s_per_1k'):.3f} / "
                f"{median(ours, 'cpu_s_per_1k'):.3f} |"
            )


def run_inline_ab(args: argparse.Namespace, base: Path, image: np.ndarray) -> None:
    """REST with small requests answered on the event loop (the default) against every request in a worker thread.

    Rounds alternate the two servers so that a change in the machine's load hits both alike.
    """
    from native_load import wrk

    body, _ = v2_requests(image)
    variants = {"worker thread": ["--inline-max-micros", "0"], "inline (default)": []}
    runs: dict[str, dict[int, list[dict]]] = {v: {c: [] for c in (1, 16, 64)} for v in variants}
    for _ in range(args.rounds):
        for variant, flags in variants.items():
            proc, rest, _grpc = trainflow_server(base, *flags)
            try:
                for c in (1, 16, 64):
                    runs[variant][c].append(
                        wrk(f"http://{rest}/v2/models/mnist/infer", body, c, args.seconds, proc.pid)
                    )
            finally:
                stop_server(proc)
    print(f"\nV2 REST (wrk), median of {args.rounds} alternating rounds: inline vs worker thread")
    print(
        "| concurrency | thread req/s | inline req/s | ratio | thread p99 ms | inline p99 ms | thread / inline CPU s per 1k |"
    )
    print("|---|---|---|---|---|---|---|")
    for c in (1, 16, 64):
        a, b = (
            {k: statistics.median(r[k] for r in runs[v][c]) for k in ("rps", "p99_ms", "cpu_s_per_1k")}
            for v in variants
        )
        print(
            f"| {c} | {a['rps']:.0f} | {b['rps']:.0f} | {b['rps'] / a['rps']:.2f}x | {a['p99_ms']:.2f} | "
            f"{b['p99_ms']:.2f} | {a['cpu_s_per_1k']:.3f} / {b['cpu_s_per_1k']:.3f} |"
        )


def mlserver_wanted(args: argparse.Namespace) -> bool:
    if args.skip_mlserver:
        return False
    if not (MLSERVER_VENV / "bin" / "mlserver").exists():
        print(f"MLServer not installed in {MLSERVER_VENV}: see the docstring", file=sys.stderr)
        return False
    return True


def run_tritonclient(args: argparse.Namespace, work: Path, base: Path, model_path: Path, image: np.ndarray) -> None:
    floor_result = floor(model_path, image, args.requests)
    print(f"  floor     ORT  c=1  {fmt(floor_result)}", flush=True)
    ours = measure("trainflow", *trainflow_server(base), image, args.requests)
    theirs = measure("MLServer", *mlserver(model_path, work), image, args.requests) if mlserver_wanted(args) else None
    report(floor_result, ours, theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--load", choices=("native", "tritonclient", "both", "inline", "batching", "floors"), default="both"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="--load native, inline, batching, floors: alternating rounds."
    )
    parser.add_argument("--seconds", type=float, default=5, help="Native load: seconds per measurement.")
    parser.add_argument("--requests", type=int, default=1500, help="tritonclient: requests per measurement.")
    parser.add_argument(
        "--batching",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Native load: also the CNN at c=64 with dynamic batching off and on.",
    )
    parser.add_argument("--batch-timeout-micros", type=int, default=1000)
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument(
        "--bare-floor", action="store_true", help="Native load: also the fixed-reply floor that reads no request."
    )
    parser.add_argument(
        "--baseline-src", type=Path, help="--load floors: also serve with this src folder (the code before a change)."
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    sys.path.insert(0, str(REPO / "benchmarks"))
    image = np.random.default_rng(1).random((1, 784), dtype=np.float32)
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    try:
        base = model_base(work / "models", mlp_onnx())
        model_path = base / "1" / "model.onnx"
        if args.load == "inline":
            run_inline_ab(args, base, image)
        if args.load == "batching":
            run_batching_ab(args, work, image)
        if args.load == "floors":
            run_floors(args, base, model_path, image)
        if args.load in ("native", "both"):
            run_native(args, work, base, model_path, image)
        if args.load in ("tritonclient", "both"):
            run_tritonclient(args, work, base, model_path, image)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
