"""Client fixtures: a real model server (the serving tests' tiny ONNX model) on free loopback ports."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from model_files import centroid_classifier_onnx, publish

from trainflow.serving.server import ModelServer, ServerConfig


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Iterator[ModelServer]:
    base = tmp_path_factory.mktemp("client-models")
    publish(base, 1, centroid_classifier_onnx(mnist_dir))
    server = ModelServer(ServerConfig("mnist", str(base), rest_port=0, grpc_port=0)).start()
    try:
        yield server
    finally:
        server.stop(grace=0.5)


@pytest.fixture(scope="module")
def addresses(live_server: ModelServer) -> dict[str, str]:
    """Protocol -> the HOST:PORT `trainflow predict --server` takes."""
    rest = live_server.rest_url.removeprefix("http://")
    return {"grpc": live_server.grpc_address, "v2-grpc": live_server.grpc_address, "rest": rest, "v2-rest": rest}
