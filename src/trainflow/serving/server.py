"""One model server process: the repository, the data plane, a REST server and a gRPC server on one host."""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainflow.cores import usable_cores
from trainflow.proctitle import set_title
from trainflow.serving.batching import BatchingConfig
from trainflow.serving.dataplane import DEFAULT_INLINE_MAX_MICROS, DataPlane
from trainflow.serving.errors import ServingError
from trainflow.serving.images import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_REQUEST_PIXELS, ImageDecoder, ImageLimits
from trainflow.serving.metrics import ServingMetrics
from trainflow.serving.model_config import ModelEntry, VersionPolicy
from trainflow.serving.names import check_model_name
from trainflow.serving.repository import ModelRepository, RepositoryConfig
from trainflow.serving.rest_io import BodyLimits
from trainflow.storage import StorageOptions

if TYPE_CHECKING:  # both are imported when the server starts, not with this module
    import uvicorn

    from trainflow.serving.grpc_server import GrpcServer

log = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_HEADER_TIMEOUT_S = 10.0
BUFFERED_BODIES = 8  # large REST bodies held in memory at once, in --max-request-bytes


@dataclass(frozen=True)
class ServerConfig:
    """Everything `trainflow serve` takes; port 0 picks a free port; `models`, when given, replaces the one model."""

    model_name: str
    base_url: str
    host: str = "127.0.0.1"
    rest_port: int = 8501
    grpc_port: int = 9000
    poll_seconds: float = 1.0
    max_batch_size: int = 0  # 0: no dynamic batching
    batch_timeout_micros: int = 0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_S
    header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_S
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS
    threads: int = 1  # ONNX Runtime intra-op threads per session
    inline_max_micros: int = DEFAULT_INLINE_MAX_MICROS
    keep_versions: int = 2
    storage: StorageOptions | None = None
    models: tuple[ModelEntry, ...] = ()

    def __post_init__(self) -> None:
        if not self.models:
            check_model_name(self.model_name)
        for flag, value in (
            ("--max-request-bytes", self.max_request_bytes),
            ("--max-concurrency", self.max_concurrency),
            ("--body-timeout-seconds", self.body_timeout_seconds),
            ("--header-timeout-seconds", self.header_timeout_seconds),
            ("--max-image-pixels", self.max_image_pixels),
            ("--max-request-pixels", self.max_request_pixels),
        ):
            if not value > 0:
                raise ServingError(f"{flag} is {value}: it must be a positive number")
        if self.inline_max_micros < 0:
            raise ServingError(f"--inline-max-micros is {self.inline_max_micros}: give 0 (never inline) or more")

    def entries(self) -> tuple[ModelEntry, ...]:
        """The models to serve: the config file's, or the one named on the command line."""
        return self.models or (ModelEntry(self.model_name, self.base_url, VersionPolicy("latest", self.keep_versions)),)

    def repository_configs(self) -> list[RepositoryConfig]:
        batching = (
            BatchingConfig(self.max_batch_size, self.batch_timeout_micros / 1e6, max(1, usable_cores() // self.threads))
            if self.max_batch_size > 0
            else None
        )
        return [
            RepositoryConfig(e.name, e.base_path, self.poll_seconds, e.policy, self.threads, batching, self.storage)
            for e in self.entries()
        ]


class ModelServer:
    """Start with `start()` (or `with`), stop with `stop()`; `rest_url` / `grpc_address` hold the real ports."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.repositories = [ModelRepository(c) for c in config.repository_configs()]
        # a few images decode at once, whatever the concurrency: their memory is bounded by the pixel limits
        images = ImageDecoder(
            ImageLimits(config.max_image_pixels, config.max_request_pixels), concurrent=min(4, usable_cores())
        )
        self.plane = DataPlane(
            self.repositories, config.max_concurrency, ServingMetrics(), images, config.inline_max_micros / 1e6
        )
        self.rest_port = 0
        self.grpc_port = 0
        self._uvicorn: uvicorn.Server | None = None
        self._rest_thread: threading.Thread | None = None
        self._grpc: GrpcServer | None = None

    @property
    def rest_url(self) -> str:
        return f"http://{_host_for_url(self.config.host)}:{self.rest_port}"

    @property
    def grpc_address(self) -> str:
        return f"{_host_for_url(self.config.host)}:{self.grpc_port}"

    def start(self) -> ModelServer:
        """Bind both ports, load what versions there are, start serving; ServingError if a port is taken."""
        rest_socket = _bind(self.config.host, self.config.rest_port, "--rest-port")
        try:
            for repository in self.repositories:
                repository.start()
            self._start_grpc()
            self._start_rest(rest_socket)
        except BaseException:
            rest_socket.close()
            self.stop()
            raise
        log.info(
            "serving %s: REST %s, gRPC %s",
            ", ".join(f"model '{e.name}' from {e.base_path}" for e in self.config.entries()),
            self.rest_url,
            self.grpc_address,
        )
        return self

    @property
    def repository(self) -> ModelRepository:
        """The first (with one model, the only) model's repository."""
        return self.repositories[0]

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until every model has a version loaded; True when they do."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for repository in self.repositories:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not repository.wait_ready(left):
                return False
        return True

    def stop(self, grace: float = 2.0) -> None:
        """Stop accepting requests, let those in flight finish (up to `grace` seconds), unload."""
        if self._grpc is not None:
            self._grpc.stop(grace)
            self._grpc = None
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            if self._rest_thread is not None:
                self._rest_thread.join(timeout=grace + 5)
            self._uvicorn = None
        self.plane.close()
        for repository in self.repositories:
            repository.stop()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_rest(self, sock: socket.socket) -> None:
        import uvicorn

        from trainflow.serving.rest_app import build_rest_app
        from trainflow.serving.rest_protocol import HeaderDeadlineProtocol

        limits = BodyLimits(
            self.config.max_request_bytes,
            self.config.body_timeout_seconds,
            BUFFERED_BODIES * self.config.max_request_bytes,
        )
        app = build_rest_app(self.plane, limits)
        protocol = functools.partial(
            HeaderDeadlineProtocol,
            header_timeout=self.config.header_timeout_seconds,
            body_timeout=self.config.body_timeout_seconds,
        )
        config = uvicorn.Config(
            app,
            http=protocol,  # type: ignore[arg-type]  # uvicorn calls it like a protocol class
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
            server_header=False,
            # asyncio's loop, not uvloop: under a burst of new connections to a busy server uvloop answered some
            # first requests after 0.4-0.6 s (wrk, 64 connections: p99 380-610 ms against 35-50 ms, same req/s)
            loop="asyncio",
        )
        self._uvicorn = server = uvicorn.Server(config)
        self.rest_port = sock.getsockname()[1]
        self._rest_thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="rest-server", daemon=True
        )
        self._rest_thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not self._rest_thread.is_alive() or time.monotonic() > deadline:
                raise ServingError(f"the REST server on {self.rest_url} did not start: see the log above")
            time.sleep(0.01)

    def _start_grpc(self) -> None:
        from trainflow.serving.grpc_server import GrpcServer

        options = [
            ("grpc.max_receive_message_length", self.config.max_request_bytes),
            ("grpc.max_send_message_length", 256 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ]
        address = f"{_host_for_url(self.config.host)}:{self.config.grpc_port}"
        self._grpc = GrpcServer(self.plane, address, options)
        self.grpc_port = self._grpc.start()


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _bind(host: str, port: int, flag: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, so that asyncio sets TCP_NODELAY on each accepted connection (it checks the socket's
    # proto): otherwise a response's body waits on the client's delayed ACK of its headers, ~40 ms a request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ServingError(
            f"cannot listen on {host}:{port}: {exc.strerror}; pick another port with {flag} (0 = any free port)"
        ) from None
    sock.setblocking(False)
    return sock


def serve_until_stopped(
    config: ServerConfig, stop: threading.Event, on_ready: Callable[[ModelServer], None] | None = None
) -> None:
    """Run a server until `stop` is set; `on_ready` is called once both ports listen and a version is loaded."""
    server = ModelServer(config).start()
    set_title(f"trainflow serve {','.join(r.name for r in server.repositories)} :{server.rest_port}")
    try:
        for repository in server.repositories:
            if not repository.ready():
                log.info(
                    "model '%s': waiting for a first version under %s", repository.name, repository.config.base_url
                )
        while not stop.is_set():
            if server.wait_ready(timeout=0.2):
                break
        if on_ready is not None and not stop.is_set():
            on_ready(server)
        stop.wait()
        log.info("stopping the model server")
    finally:
        server.stop()
