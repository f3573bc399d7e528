"""A real model server on free loopback ports, for the serving and adversarial tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trainflow.serving.server import ModelServer, ServerConfig


@contextmanager
def running_server(base: str | Path, **overrides: object) -> Iterator[ModelServer]:
    """A real server on free loopback ports, always stopped."""
    settings: dict = {"model_name": "mnist", "rest_port": 0, "grpc_port": 0, "poll_seconds": 0.1, **overrides}
    server = ModelServer(ServerConfig(base_url=str(base), **settings)).start()
    try:
        yield server
    finally:
        server.stop(grace=0.5)
