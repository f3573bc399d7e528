"""Model server throughput and latency: ONNX Runtime in-process, trainflow serve, and MLServer 1.7.

Same ONNX model throughout (the example's MLP: 784-100-10, softmax and argmax), one image per request,
driven by the same tritonclient load (V2 REST with JSON tensors, V2 gRPC) from this process:
  (a) floor:      `session.run` in-process, batch 1;
  (b) trainflow:  `trainflow serve` in its own process;
  (c) MLServer:   `mlserver start` from benchmarks/.venvs/mlserver with a custom runtime wrapping the same
                  ONNX Runtime session (benchmarks/mlserver_onnx_runtime.py), default settings otherwise.
Concurrency 1 and 16 (one client per thread). Prints p50/p99 latency, requests/s and the ratios.

    python3 -m venv benchmarks/.venvs/mlserver && benchmarks/.venvs/mlserver/bin/pip install "mlserver==1.7.*" onnxruntime
    .venv/bin/python benchmarks/serve.py [--requests 1500] [--skip-mlserver]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
MLSERVER_VENV = REPO / "benchmarks" / ".venvs" / "mlserver"
CONCURRENCY = (1, 16)


def mlp_onnx(hidden: int = 100) -> bytes:
    rng = np.random.default_rng(0)
    weights = {"W1": rng.normal(0, 0.05, (784, hidden)), "B1": np.zeros(hidden), "W2": rng.normal(0, 0.1, (hidden, 10)),
               "B2": np.zeros(10)}
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["images", "W1", "B1"], ["h"]), helper.make_node("Relu", ["h"], ["a"]),
         helper.make_node("Gemm", ["a", "W2", "B2"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
         helper.make_node("ArgMax", ["scores"], ["classes"], axis=1, keepdims=0)],
        "mlp", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 784])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10]),
         helper.make_tensor_value_info("classes", TensorProto.INT64, ["N"])],
        initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
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
    return {"p50_ms": float(np.percentile(ordered, 50) * 1e3), "p99_ms": float(np.percentile(ordered, 99) * 1e3),
            "rps": len(latencies) / seconds}


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
            except Exception as exc:  # counted and reported, never silently dropped
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


def measure(name: str, proc: subprocess.Popen, rest: str, grpc: str, image: np.ndarray, requests: int) -> dict:
    results = {}
    try:
        for protocol, address in (("rest", rest), ("grpc", grpc)):
            for concurrency in CONCURRENCY:
                results[f"{protocol}-c{concurrency}"] = load(protocol, address, image, concurrency, requests)
                print(f"  {name:9} {protocol:4} c={concurrency:<2} {fmt(results[f'{protocol}-c{concurrency}'])}", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return results


def fmt(r: dict) -> str:
    errors = f"  errors {r['errors']}" if r.get("errors") else ""
    return f"p50 {r['p50_ms']:6.3f} ms  p99 {r['p99_ms']:6.3f} ms  {r['rps']:8.0f} req/s{errors}"


def trainflow_server(base: Path) -> tuple[subprocess.Popen, str, str]:
    rest, grpc = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "trainflow", "--log-level", "WARNING", "serve", "--model-base-path", str(base),
            "--rest-port", rest.split(":")[1], "--grpc-port", grpc.split(":")[1]]
    return run_server(argv, rest), rest, grpc


def mlserver(model_path: Path, work: Path) -> tuple[subprocess.Popen, str, str]:
    rest_port, grpc_port = free_port(), free_port()
    root = work / "mlserver"
    (root / "mnist").mkdir(parents=True)
    shutil.copy(model_path, root / "mnist" / "model.onnx")
    shutil.copy(REPO / "benchmarks" / "mlserver_onnx_runtime.py", root / "mnist" / "mlserver_onnx_runtime.py")
    (root / "mnist" / "model-settings.json").write_text(json.dumps({
        "name": "mnist", "implementation": "mlserver_onnx_runtime.OnnxClassifier",
        "parameters": {"uri": str(root / "mnist" / "model.onnx")}}))
    (root / "settings.json").write_text(json.dumps({
        "http_port": rest_port, "grpc_port": grpc_port, "metrics_port": free_port(), "debug": False}))
    env = {**os.environ, "PATH": f"{MLSERVER_VENV / 'bin'}:{os.environ['PATH']}"}
    argv = [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(root)]
    return run_server(argv, f"127.0.0.1:{rest_port}", cwd=root, env=env), f"127.0.0.1:{rest_port}", f"127.0.0.1:{grpc_port}"


def report(floor_result: dict, ours: dict, theirs: dict | None) -> None:
    print("\n| setup | p50 ms | p99 ms | req/s | req/s vs MLServer | p99 vs MLServer |")
    print("|---|---|---|---|---|---|")
    print(f"| ONNX Runtime in-process, batch 1 | {floor_result['p50_ms']:.3f} | {floor_result['p99_ms']:.3f} | "
          f"{floor_result['rps']:.0f} | | |")
    for key, r in ours.items():
        other = theirs.get(key) if theirs else None
        ratio = f"{r['rps'] / other['rps']:.2f}x" if other else "-"
        p99 = f"{r['p99_ms'] / other['p99_ms']:.2f}x" if other else "-"
        print(f"| trainflow {key} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['rps']:.0f} | {ratio} | {p99} |")
        if other:
            print(f"| MLServer {key} | {other['p50_ms']:.3f} | {other['p99_ms']:.3f} | {other['rps']:.0f} | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500, help="Requests per measurement.")
    parser.add_argument("--skip-mlserver", action="store_true")
    args = parser.parse_args()
    image = np.random.default_rng(1).random((1, 784), dtype=np.float32)
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    try:
        base = work / "models"
        (base / "1").mkdir(parents=True)
        model_path = base / "1" / "model.onnx"
        model_path.write_bytes(mlp_onnx())
        sys.path.insert(0, str(REPO / "src"))
        from trainflow.export.signature import SIGNATURE_FILE, image_classifier_signature

        (base / "1" / SIGNATURE_FILE).write_text(image_classifier_signature().to_json())
        floor_result = floor(model_path, image, args.requests)
        print(f"  floor     ORT  c=1  {fmt(floor_result)}", flush=True)
        ours = measure("trainflow", *trainflow_server(base), image, args.requests)
        theirs = None
        if not args.skip_mlserver and (MLSERVER_VENV / "bin" / "mlserver").exists():
            theirs = measure("MLServer", *mlserver(model_path, work), image, args.requests)
        elif not args.skip_mlserver:
            print(f"MLServer not installed in {MLSERVER_VENV}: see the docstring", file=sys.stderr)
        report(floor_result, ours, theirs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
