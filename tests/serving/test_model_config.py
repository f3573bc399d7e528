"""Several models in one server from a TF Serving `--model_config_file`, each with its own version policy."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from model_files import constant_classifier_onnx, pair_model_onnx, pair_signature, publish

from trainflow.serving.errors import ServingError
from trainflow.serving.model_config import parse_model_config, read_model_config
from trainflow.serving.protos.tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
from trainflow.serving.server import ModelServer, ServerConfig

IMAGE = [0.5] * 784
CONFIG = """
# two models, as TF Serving reads them
model_config_list {
  config {
    name: "digits"
    base_path: "%(digits)s"
    model_platform: "onnx"
    model_version_policy { specific { versions: 1 versions: 3 } }
  }
  config {
    name: "pair"
    base_path: "%(pair)s"
    model_version_policy { latest { num_versions: 2 } }
  }
}
"""


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("config")
    for version in (1, 2, 3):  # version v answers class v; the policy serves 1 and 3
        publish(root / "digits", version, constant_classifier_onnx(version))
        publish(root / "pair", version, pair_model_onnx(), pair_signature())
    path = root / "models.config"
    path.write_text(CONFIG % {"digits": root / "digits", "pair": root / "pair"})
    return path


@pytest.fixture(scope="module")
def server(config_file: Path) -> Iterator[ModelServer]:
    config = ServerConfig(
        "unused", "", rest_port=0, grpc_port=0, poll_seconds=0.1, models=tuple(read_model_config(config_file))
    )
    with ModelServer(config) as started:
        assert started.wait_ready(30)
        yield started


def grpc_versions(server: ModelServer, name: str) -> list[int]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    with grpc.insecure_channel(server.grpc_address) as channel:
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    return sorted(s.version for s in status.model_version_status)


def digit(server: ModelServer, version: int | None = None) -> int:
    path = "/v1/models/digits" + (f"/versions/{version}" if version else "") + ":predict"
    body = {"signature_name": "predict_images", "instances": [IMAGE]}
    response = httpx.post(server.rest_url + path, json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]["classes"]


def test_two_models_are_served_side_by_side_with_their_own_version_policies(server: ModelServer) -> None:
    assert grpc_versions(server, "digits") == [1, 3]  # specific {1, 3}
    assert grpc_versions(server, "pair") == [2, 3]  # latest 2
    assert digit(server) == 3 and digit(server, 1) == 1
    assert (
        httpx.post(
            server.rest_url + "/v1/models/digits/versions/2:predict", json={"instances": [IMAGE]}, timeout=10
        ).status_code
        == 404
    )
    pair = httpx.post(
        server.rest_url + "/v1/models/pair:predict",
        timeout=10,
        json={"signature_name": "predict", "inputs": {"ids": [[1, 2, 3]], "x": [[0.0, 0.1, 0.2, 0.3]]}},
    )
    assert pair.status_code == 200 and pair.json()["outputs"]["scores"][0] != [], pair.text
    client = triton_grpc.InferenceServerClient(server.grpc_address)
    try:
        assert client.is_server_ready() and client.is_model_ready("digits") and client.is_model_ready("pair")
        assert client.get_model_metadata("pair", as_json=True)["versions"] == ["2", "3"]
        inputs = triton_grpc.InferInput("images", [1, 784], "FP32")
        inputs.set_data_from_numpy(np.full((1, 784), 0.5, np.float32))
        assert client.infer("digits", [inputs], model_version="1").as_numpy("classes").tolist() == [1]
    finally:
        client.close()
    unknown = httpx.get(server.rest_url + "/v1/models/other", timeout=10)
    assert unknown.status_code == 404 and "'digits', 'pair'" in unknown.json()["error"]


@pytest.mark.parametrize(
    "text, words",
    [
        ('model_config_list { config { name: "a" base_path: "/x" colour: "red" } }', ["colour"]),
        (
            'model_config_list { config { name: "a" base_path: "/x" } config { name: "a" base_path: "/y" } }',
            ["'a'", "twice"],
        ),
        ('model_config_list { config { name: "../a" base_path: "/x" } }', ["config 1", "'../a'", "not valid"]),
        ('model_config_list { config { name: "a" } }', ["base_path is missing"]),
        ('model_config_list { config { name: "a" base_path: "/x" model_platform: "tensorflow" } }', ["'tensorflow'"]),
        (
            'model_config_list { config { name: "a" base_path: "/x" model_version_policy { specific { } } } }',
            ["specific versions"],
        ),
        ("model_config_list {}", ["no models"]),
        ("model_config_list { config { name: ", ["models.config"]),
    ],
)
def test_config_errors_are_one_line(text: str, words: list[str]) -> None:
    with pytest.raises(ServingError) as caught:
        parse_model_config(text, "models.config")
    assert all(word in caught.value.message for word in words) and "\n" not in caught.value.message, caught.value


def test_serve_refuses_a_bad_config_file_in_one_line_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "models.config"
    bad.write_text('model_config_list { config { name: "a" base_path: "/x" } config { name: "a" base_path: "/y" } }')
    for args in (
        ["--model-config-file", str(bad)],
        ["--model-config-file", str(tmp_path / "missing.config")],
        ["--model-config-file", str(bad), "--model-base-path", str(tmp_path)],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "trainflow", "serve", *args, "--rest-port", "0", "--grpc-port", "0"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "TRAINFLOW_LOG_LEVEL": "ERROR"},
        )
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr


def test_trainflow_serve_with_a_model_config_file_serves_every_model(config_file: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainflow",
            "serve",
            "--model-config-file",
            str(config_file),
            "--rest-port",
            "0",
            "--grpc-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
    )
    try:
        line = proc.stdout.readline()  # printed once every model has a version loaded
        assert "'digits' version 3" in line and "'pair' version 3" in line, line
        rest_url = line.split("REST ")[1].split(",")[0]
        for name in ("digits", "pair"):
            assert httpx.get(f"{rest_url}/v2/models/{name}/ready", timeout=10).json() == {"name": name, "ready": True}
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
