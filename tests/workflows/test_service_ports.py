"""Where local services listen: their usual ports when free, free ones otherwise; and `predict` finding them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from tests.commands import trainflow
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
            serves="model",
            model_name="digits",
            outputs=("rest-url", "grpc-address", "model-version", "model-name"),
        ),
    ),
)
"""


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


RACER = """
import os, socket, subprocess, sys, time
from http.server import HTTPServer, SimpleHTTPRequestHandler
port, usual, pid_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if port == usual:  # another process binds it first, as a run starting at the same moment would
    holder = subprocess.Popen([sys.executable, "-c", f"import socket, time; s = socket.socket(); "
                               f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)"], start_new_session=True)
    open(pid_file, "w").write(str(holder.pid))
    time.sleep(1.5)
    sys.exit("cannot listen on the port: taken")
HTTPServer(("127.0.0.1", port), SimpleHTTPRequestHandler).serve_forever()
"""


def test_a_service_that_loses_its_usual_port_to_another_process_starts_again_on_a_free_one(tmp_path: Path) -> None:
    from servers import free_port

    usual, pid_file = free_port(), tmp_path / "holder.pid"
    (tmp_path / "racer.py").write_text(dedent(RACER))
    (tmp_path / "raced.py").write_text(
        dedent(f"""
        from trainflow.pipelines import Pipeline, Port, Probe, Service, port
        PIPELINE = Pipeline(name="raced", params=(), steps=(
            Service(name="web", argv=("python", {str(tmp_path / "racer.py")!r}, port("http"), "{usual}",
                                      {str(pid_file)!r}),
                    ports=(Port("http", {usual}),), probe=Probe("http", "/"), urls={{"url": "http://{{host}}:{{http}}/"}},
                    outputs=("url",)),))
    """)
    )
    try:
        out = trainflow("submit", str(tmp_path / "raced.py"), "--wait")
        assert out.returncode == 0, out.stdout + out.stderr
        name = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("Name:"))
        web = json.loads(trainflow("get", name, "-o", "json").stdout)["steps"][0]
        assert web["status"] == "Succeeded" and web["message"] == "service running", web
        assert pid_file.exists() and web["outputs"]["url"] != f"http://127.0.0.1:{usual}/"
    finally:
        trainflow("delete", "--all")
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 9)
