"""Serving fixtures: tiny real ONNX models in a version directory, and a real server on free ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from live_server import running_server
from model_files import centroid_classifier_onnx, mnist_test_images, publish

from trainflow.serving.server import ModelServer


@pytest.fixture(scope="session")
def centroid_model(mnist_dir: Path) -> bytes:
    return centroid_classifier_onnx(mnist_dir)


@pytest.fixture(scope="session")
def test_set(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """200 MNIST test images as float32 [200, 28, 28] in [0, 1], and their labels."""
    return mnist_test_images(mnist_dir, 200)


@pytest.fixture
def model_base(tmp_path: Path, centroid_model: bytes) -> Path:
    """An export base with version 1."""
    base = tmp_path / "exported" / "mnist"
    publish(base, 1, centroid_model)
    return base


@pytest.fixture
def start_server() -> Callable[..., object]:
    return running_server


@pytest.fixture
def server(model_base: Path) -> Iterator[ModelServer]:
    with running_server(model_base) as started:
        yield started
