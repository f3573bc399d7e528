"""The model server's gRPC side: a grpc.aio server with the V2 and TF Serving services, on its own event loop.

grpc.aio rather than grpcio's threaded server: the threaded server hands every call from its polling thread
to a pool thread and back, and with dozens of pool threads contending for the interpreter lock a cheap
call cost 0.76 ms of CPU. On grpc.aio a cheap call is answered on the loop (0.52 ms), and the data plane
sends the expensive ones to its workers (`DataPlane.offload`), as on REST.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

import grpc

from trainflow.serving.dataplane import DataPlane
from trainflow.serving.errors import ServingError
from trainflow.serving.metrics import watch_event_loop
from trainflow.serving.tfs_grpc import add_tfs_services
from trainflow.serving.v2_grpc import add_v2_service


class GrpcServer:
    """`start()` binds `address` (ServingError if it cannot) and serves on a thread; `stop()` drains and ends it."""

    def __init__(self, plane: DataPlane, address: str, options: list[tuple[str, int]]) -> None:
        self.plane = plane
        self.address = address
        self.options = options
        self._grace = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Serve on a new thread once the port is bound; the port."""
        bound: Future[int] = Future()
        self._thread = threading.Thread(target=self._run, args=(bound,), name="grpc-server", daemon=True)
        self._thread.start()
        return bound.result()

    def stop(self, grace: float) -> None:
        """Refuse new calls, let those in flight finish for up to `grace` seconds, end the thread."""
        self._grace = grace
        if self._loop is not None and self._stopping is not None:
            try:
                self._loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:  # the loop has already ended
                pass
        if self._thread is not None:
            self._thread.join(timeout=grace + 5)
        self._loop = self._stopping = self._thread = None

    def _run(self, bound: Future[int]) -> None:
        try:
            asyncio.run(self._serve(bound))
        except BaseException as exc:  # noqa: BLE001 - whatever ended the loop before the port was bound goes to start()
            if not bound.done():
                bound.set_exception(exc)

    async def _serve(self, bound: Future[int]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = grpc.aio.server(options=self.options)
        add_tfs_services(server, self.plane)
        add_v2_service(server, self.plane)
        try:
            port = server.add_insecure_port(self.address)
        except RuntimeError:
            port = 0
        if not port:
            bound.set_exception(
                ServingError(
                    f"cannot listen for gRPC on {self.address}: the port is in use or the host is not local; "
                    "pick another with --grpc-port (0 = any free port)"
                )
            )
            return
        await server.start()
        bound.set_result(port)
        watcher = asyncio.create_task(watch_event_loop(self.plane.metrics, "grpc"))
        await self._stopping.wait()
        await server.stop(self._grace)
        watcher.cancel()
