"""Where local services listen: their usual ports when free, free ones otherwise; and `predict` finding them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from trainflow.workflows.local.services import port_is_free

PIPELINE = """
from trainflow.pipelines import HOST, Param, Pipeline, Port, Probe, Service, param, port

PIPELINE = Pipeline(
    name="serve-only",
    params=(Param("base", ""),),
    steps=(
        Service(
            name="serve-model",
            argv=("trainflow", "step", "serve-model", "--model-name", "digits", "--export-base", param("base"),
                  "--rest-port", port("rest"), "--grpc-port", port("grpc"), "--host", HOST),
            ports=(Port("rest", 8501, "http"), Port("grpc", 9000, "grpc")),
            probe=Probe("rest", "/v2/health/ready"),
            outputs=("rest-url", "grpc-address", "model-version", "model-name"),
        ),
    ),
)
"""


def trainflow(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainflow", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=timeout,
    )


def served(pipeline: Path, base: Path) -> dict:
    out = trainflow("submit", str(pipeline), "-p", f"base={base}", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    name = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("Name:"))
    info = json.loads(trainflow("get", name, "-o", "json").stdout)
    return {"name": name, **info["steps"][0]["outputs"]}


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Path]:
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
    from model_files import constant_classifier_onnx, publish

    publish(tmp_path / "models", 1, constant_classifier_onnx(3))
    (tmp_path / "serve_only.py").write_text(dedent(PIPELINE))
    yield tmp_path / "serve_only.py"
    trainflow("delete", "--all")


def test_a_service_takes_its_usual_ports_when_free_and_free_ones_when_taken(pipeline: Path) -> None:
    usual_free = port_is_free(8501) and port_is_free(9000)  # another test run may hold them
    first = served(pipeline, pipeline.parent / "models")
    if usual_free:
        assert first["rest-url"] == "http://127.0.0.1:8501" and first["grpc-address"] == "127.0.0.1:9000", first
    second = served(pipeline, pipeline.parent / "models")  # the first one holds its ports
    assert second["rest-url"] != first["rest-url"] and second["grpc-address"] != first["grpc-address"]


def test_predict_without_server_uses_the_model_served_last_and_says_so(pipeline: Path, mnist_dir: Path) -> None:
    served(pipeline, pipeline.parent / "models")
    latest = served(pipeline, pipeline.parent / "models")
    out = trainflow("predict", "--data-dir", str(mnist_dir), "--num", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"workflow {latest['name']} at {latest['grpc-address']}" in out.stderr, out.stderr
    assert out.stdout.count("predicted 3") == 2  # its model, under its own name ('digits')
    rest = trainflow("predict", "--protocol", "rest", "--data-dir", str(mnist_dir), "--num", "1")
    assert rest.returncode == 0 and latest["rest-url"].removeprefix("http://") in rest.stderr, rest.stderr
