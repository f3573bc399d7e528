"""The floors for benchmarks/serve.py: the same stack as `trainflow serve`, doing the least a server can.

REST: uvicorn (httptools, asyncio's loop) with a bare ASGI app. Without --model it reads the body and sends
pre-computed bytes; with --model (the JSON and binary floors) it parses the V2 request (orjson into numpy
for JSON tensors; with an Inference-Header-Content-Length header, the binary tensor extension's JSON header
and raw bytes), runs the same ONNX Runtime session on the event loop and encodes the V2 JSON reply with
orjson, nothing else. gRPC: a grpc.aio server on its own thread and event loop, with a generic async handler
that returns pre-serialized bytes for `inference.GRPCInferenceService/ModelInfer`. So the difference
between trainflow and these servers is trainflow's own work per request.

    python benchmarks/floor_server.py --rest-port 8600 --grpc-port 9600 \
        --rest-reply reply.json --grpc-reply reply.bin
    python benchmarks/floor_server.py --rest-port 8600 --model model.onnx [--grpc-port 9600]  # + the gRPC floor
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

READY_PATHS = (b"/v2/health/ready", b"/v2/models/mnist/ready")


def rest_app(reply: bytes) -> Any:
    """An ASGI app: health answers `{}`; everything else reads the body and answers `reply`."""
    json_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(reply)).encode())]
    empty_headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        if scope["raw_path"] in READY_PATHS:
            await send({"type": "http.response.start", "status": 200, "headers": empty_headers})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": json_headers})
        await send({"type": "http.response.body", "body": reply})

    return app


def model_session(model_path: Path) -> tuple[Any, str, list[str], dict[Any, str]]:
    """The model's ONNX Runtime session with trainflow's session options, its input and output names, and the V2
    datatype of each numpy dtype its outputs may have."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the session options trainflow's runtime gives its sessions
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_names = [o.name for o in session.get_outputs()]
    datatypes = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}
    return session, input_name, output_names, datatypes


def model_app(model_path: Path) -> Any:
    """An ASGI app answering V2 infer requests (JSON or binary tensors) with one ONNX Runtime session."""
    import numpy as np
    import orjson

    session, input_name, output_names, datatypes = model_session(model_path)
    empty_headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["raw_path"] in READY_PATHS:
            await send({"type": "http.response.start", "status": 200, "headers": empty_headers})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        body = b"".join(chunks)
        length = dict(scope["headers"]).get(b"inference-header-content-length")
        if length is None:
            tensor = orjson.loads(body)["inputs"][0]
            x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
        else:
            tensor = orjson.loads(body[: int(length)])["inputs"][0]
            x = np.frombuffer(body[int(length) :], dtype=np.float32).reshape(tensor["shape"])
        values = session.run(output_names, {input_name: x})
        outputs = [
            {"name": n, "datatype": datatypes[v.dtype], "shape": list(v.shape), "data": v.ravel().tolist()}
            for n, v in zip(output_names, values, strict=True)
        ]
        reply = orjson.dumps({"model_name": "mnist", "model_version": "1", "outputs": outputs})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(reply)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": reply})

    return app


def grpc_server(port: int, reply: bytes) -> Callable[[], None]:
    """Serve the fixed gRPC reply on a thread, as trainflow does; returns the function that stops it."""
    import grpc

    async def infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return reply

    handler = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService",
        {
            "ModelInfer": grpc.unary_unary_rpc_method_handler(infer),  # no (de)serializers: raw bytes in and out
        },
    )
    return grpc_on_thread(port, [("grpc.so_reuseport", 0)], lambda server: server.add_generic_rpc_handlers((handler,)))


def grpc_on_thread(port: int, options: list[tuple[str, Any]], add: Callable[[Any], None]) -> Callable[[], None]:
    """A grpc.aio server with `options` on 127.0.0.1:`port`, on its own thread and loop as trainflow runs it, its
    services added by `add`; returns the function that stops it."""
    import grpc

    bound = threading.Event()
    stopping: list[Callable[[], None]] = []

    async def serve() -> None:
        server = grpc.aio.server(options=options)
        add(server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        stopping.append(lambda: loop.call_soon_threadsafe(done.set))
        bound.set()
        await done.wait()
        await server.stop(1)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name=f"grpc-{port}", daemon=True)
    thread.start()
    if not bound.wait(60):
        raise RuntimeError(f"the gRPC server did not start on port {port}")

    def stop() -> None:
        stopping[0]()
        thread.join(5)

    return stop


def start_grpc(args: argparse.Namespace) -> Callable[[], None]:
    """The gRPC side, if --grpc-port: with --model the gRPC floor running the model (grpc_floor.py), else the fixed
    reply; the function that stops it."""
    if not args.grpc_port:
        return lambda: None
    if args.model:
        from grpc_floor import serve

        return serve(args.grpc_port, args.model)
    return grpc_server(args.grpc_port, args.grpc_reply.read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, help="Without it, no gRPC server; with --model, the gRPC floor.")
    parser.add_argument("--rest-reply", type=Path, help="The bytes every REST request gets.")
    parser.add_argument("--grpc-reply", type=Path, help="The serialized ModelInferResponse.")
    parser.add_argument("--model", type=Path, help="Answer REST infer requests with this ONNX model instead.")
    args = parser.parse_args()

    import uvicorn

    stop_grpc = start_grpc(args)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as trainflow's: TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.rest_port))
    sock.listen(1024)
    config = uvicorn.Config(
        model_app(args.model) if args.model else rest_app(args.rest_reply.read_bytes()),
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        http="httptools",
        loop="asyncio",
    )
    uvicorn.Server(config).run(sockets=[sock])  # uvicorn ends on SIGTERM/SIGINT
    stop_grpc()


if __name__ == "__main__":
    main()
