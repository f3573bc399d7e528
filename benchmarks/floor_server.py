"""The floor for benchmarks/serve.py: the same stack as `trainflow serve`, answering a fixed reply.

REST: uvicorn (httptools, asyncio's loop) with a bare ASGI app that reads the body and sends pre-computed
bytes. gRPC: a grpc.aio server on its own thread and event loop, with a generic async handler that returns
pre-serialized bytes for `inference.GRPCInferenceService/ModelInfer`. Neither parses the request nor runs a model, so the
difference between trainflow and this server is trainflow's own work per request.

    python benchmarks/floor_server.py --rest-port 8600 --grpc-port 9600 \
        --rest-reply reply.json --grpc-reply reply.bin
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
    bound = threading.Event()
    stopping: list[Callable[[], None]] = []

    async def serve() -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        stopping.append(lambda: loop.call_soon_threadsafe(done.set))
        bound.set()
        await done.wait()
        await server.stop(1)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    bound.wait()

    def stop() -> None:
        stopping[0]()
        thread.join(5)

    return stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--rest-reply", type=Path, required=True, help="The bytes every REST request gets.")
    parser.add_argument("--grpc-reply", type=Path, required=True, help="The serialized ModelInferResponse.")
    args = parser.parse_args()

    import uvicorn

    stop_grpc = grpc_server(args.grpc_port, args.grpc_reply.read_bytes())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as trainflow's: TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.rest_port))
    sock.listen(1024)
    config = uvicorn.Config(
        rest_app(args.rest_reply.read_bytes()),
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
