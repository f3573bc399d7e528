"""trainflow's V2 gRPC ModelInfer against the gRPC floor's, in process: CPU microseconds per call, no sockets.

`serve.py --load native` measures the servers end to end with h2load, which on a shared, loaded machine swings
from round to round. This calls the two servicers' ModelInfer coroutines directly on one event loop (the
request parsed from the same bytes and the reply serialized, as grpcio does around them; the example's MLP)
and counts this process's CPU time: what is left is each servicer's own work per call. The servicers
alternate round by round; ratios are per round (min / median), floor / trainflow (1.0x: as cheap).

    .venv/bin/python benchmarks/grpc_overhead.py [--rounds 5] [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def trainflow_servicer(base: Path) -> tuple[Any, Any]:
    """The V2 gRPC servicer `trainflow serve` runs, on a loaded model; and the server to stop."""
    from serve import loaded_server

    from trainflow.serving.v2_grpc import InferenceServicer

    server = loaded_server(base)
    return InferenceServicer(server.plane), server


async def cpu_us_per_call(servicer: Any, message: bytes, count: int) -> float:
    from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as pb

    def call() -> Any:
        return servicer.ModelInfer(pb.ModelInferRequest.FromString(message), None)

    reply = await call()
    if not reply.outputs:
        raise RuntimeError(f"{type(servicer).__name__} answered without outputs")
    started = time.process_time()
    for _ in range(count):
        (await call()).SerializeToString()
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000, help="Calls per measurement.")
    args = parser.parse_args()
    sys.path[:0] = [str(REPO / "src"), str(REPO / "benchmarks")]
    import numpy as np
    from grpc_floor import servicer
    from serve import mlp_onnx, model_base, v2_requests

    base = model_base(Path(tempfile.mkdtemp(prefix="grpc-overhead-")) / "mnist", mlp_onnx())
    _, message = v2_requests(np.random.default_rng(1).random((1, 784), dtype=np.float32))
    ours, server = trainflow_servicer(base)
    servicers = {"floor": servicer(base / "1" / "model.onnx"), "trainflow": ours}
    runs: dict[str, list[float]] = {name: [] for name in servicers}
    try:
        for _ in range(args.rounds):
            for name, candidate in servicers.items():
                runs[name].append(asyncio.run(cpu_us_per_call(candidate, message, args.requests)))
    finally:
        server.stop()
    load = os.getloadavg()[0]
    print(f"V2 gRPC ModelInfer, CPU us per call, {args.rounds} alternating rounds of {args.requests}; load {load:.1f}")
    print("| servicer | CPU us / call (median) | floor / servicer per round (min / median) |")
    print("|---|---|---|")
    for name, costs in runs.items():
        ratios = [f / c for f, c in zip(runs["floor"], costs, strict=True)]
        shown = "" if name == "floor" else f"{min(ratios):.2f}x / {statistics.median(ratios):.2f}x"
        print(f"| {name} | {statistics.median(costs):.1f} | {shown} |")


if __name__ == "__main__":
    main()
