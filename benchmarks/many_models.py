"""Many models in one server: memory per model, time to load them all, and a hot swap of all of them under load.

For each count (1, 10, 50 by default), writes that many copies of the example's MLP (784-100-10) as model
bases m0, m1, ... with version 1, and one --model-config-file naming them all; then:
  - load: starts `trainflow serve --model-config-file`, timing the start until every model answers ready;
  - memory: the server process's RSS and PSS once all are loaded; memory per additional model is the
    difference between counts divided by the extra models, against the same figure for bare ONNX Runtime
    sessions (the same model and session options, loaded in a fresh process);
  - hot swap: 8 client threads send V2 JSON infer requests round-robin over every model while version 2
    is written into every base at once (each a folder renamed into place, signature last); counts failed
    requests until every model reports version 2, and how long that took.
Prints the load average, since other work on the machine skews times.

    .venv/bin/python benchmarks/many_models.py [--counts 1,10,50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
from serve import free_port, mlp_onnx, model_base, stop_server

BARE = """
import sys, psutil, onnxruntime as ort
path, count = sys.argv[1], int(sys.argv[2])
def session():
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.log_severity_level = 3
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
held = [session()]
one = psutil.Process().memory_full_info()
held += [session() for _ in range(count - 1)]
many = psutil.Process().memory_full_info()
print((many.rss - one.rss) / (count - 1), (many.pss - one.pss) / (count - 1))
"""


def write_models(work: Path, count: int, onnx_model: bytes) -> Path:
    lines = ["model_config_list {"]
    for i in range(count):
        base = model_base(work / f"m{i}", onnx_model)
        lines.append(f'  config {{ name: "m{i}" base_path: "{base}" model_platform: "onnx" }}')
    lines.append("}")
    config = work / "models.config"
    config.write_text("\n".join(lines) + "\n")
    return config


def start(config: Path, count: int) -> tuple[subprocess.Popen, str, float]:
    rest = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "trainflow", "--log-level", "WARNING", "serve", "--model-config-file", str(config)]
    argv += ["--rest-port", rest.split(":")[1], "--grpc-port", str(free_port()), "--poll-seconds", "0.5"]
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with httpx.Client(timeout=5) as client:
        for i in range(count):
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
                try:
                    if client.get(f"http://{rest}/v2/models/m{i}/ready").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
    return proc, rest, time.perf_counter() - began


def version_of(client: httpx.Client, rest: str, name: str) -> list[str]:
    return client.get(f"http://{rest}/v2/models/{name}").json().get("versions", [])


def hot_swap(work: Path, rest: str, count: int, onnx_model: bytes) -> tuple[int, int, float]:
    """(requests, failed requests, seconds until every model serves version 2) with load running throughout."""
    body = json.dumps(
        {"inputs": [{"name": "images", "shape": [1, 784], "datatype": "FP32", "data": [0.5] * 784}]}
    ).encode()
    stop = threading.Event()
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def client(offset: int) -> None:
        with httpx.Client(timeout=30) as http:
            i = offset
            while not stop.is_set():
                try:
                    ok = http.post(f"http://{rest}/v2/models/m{i % count}/infer", content=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    counts["ok" if ok else "failed"] += 1
                i += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    time.sleep(1)
    began = time.perf_counter()
    for i in range(count):  # every base gets version 2: written aside, then renamed into place
        staged = model_base(work / "staged" / f"m{i}", onnx_model)
        (staged / "1").rename(work / f"m{i}" / "2")
    with httpx.Client(timeout=5) as http:
        while not all("2" in version_of(http, rest, f"m{i}") for i in range(count)):
            time.sleep(0.05)
    swapped = time.perf_counter() - began
    time.sleep(1)
    stop.set()
    for t in threads:
        t.join()
    return counts["ok"] + counts["failed"], counts["failed"], swapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,10,50")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    onnx_model = mlp_onnx()
    work = Path(tempfile.mkdtemp(prefix="tf-bench-models-"))
    memory: dict[int, tuple[int, int]] = {}
    try:
        (work / "one.onnx").write_bytes(onnx_model)
        counts = [int(c) for c in args.counts.split(",")]
        out = subprocess.run(
            [sys.executable, "-c", BARE, str(work / "one.onnx"), str(max(counts))], capture_output=True, check=True
        )
        bare_rss, bare_pss = (float(v) for v in out.stdout.split())
        print(f"bare ONNX Runtime session, per additional session: RSS {bare_rss / 2**20:.2f} MiB, "
              f"PSS {bare_pss / 2**20:.2f} MiB")  # fmt: skip
        for count in counts:
            folder = work / f"n{count}"
            config = write_models(folder, count, onnx_model)
            proc, rest, loaded = start(config, count)
            try:
                time.sleep(1)  # the first poll and warm-ups settle
                info = psutil.Process(proc.pid).memory_full_info()
                memory[count] = (info.rss, info.pss)
                requests, failed, swapped = hot_swap(folder, rest, count, onnx_model)
            finally:
                stop_server(proc)
            print(
                f"{count:3d} models: all ready {loaded:5.2f} s after start | server RSS {info.rss / 2**20:6.1f} MiB, "
                f"PSS {info.pss / 2**20:6.1f} MiB | hot swap of all to version 2 under load: {swapped:5.2f} s, "
                f"{requests} requests, {failed} failed"
            )
        low, high = min(memory), max(memory)
        if high > low:
            rss = (memory[high][0] - memory[low][0]) / (high - low)
            pss = (memory[high][1] - memory[low][1]) / (high - low)
            print(
                f"per additional model ({low} -> {high}): RSS {rss / 2**20:.2f} MiB ({rss / bare_rss:.2f}x a bare "
                f"session), PSS {pss / 2**20:.2f} MiB ({pss / bare_pss:.2f}x)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
