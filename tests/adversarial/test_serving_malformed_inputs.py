"""Malformed inputs (issue 10, defects 8 and 9, and more of their kind): wrong types, shapes, sizes and names
get a 4xx / INVALID_ARGUMENT in one line that says what is wrong; nothing gets a 200 it should not, or a 500."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from live_server import running_server
from model_files import constant_classifier_onnx, publish

from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as v2
from trainflow.serving.protos.kserve import grpc_predict_v2_pb2_grpc as v2_grpc
from trainflow.serving.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from trainflow.serving.protos.tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

IMAGE = [0.5] * 784
PREDICT = "/v1/models/mnist:predict"
INFER = "/v2/models/mnist/infer"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    base = tmp_path_factory.mktemp("malformed") / "mnist"
    publish(base, 1, constant_classifier_onnx(6))
    with running_server(base) as started:
        yield started


def v2_input(**overrides: object) -> dict:
    return {"name": "images", "shape": [1, 784], "datatype": "FP32", "data": IMAGE, **overrides}


def post(server, path: str, body: object, headers: dict | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(
        server.rest_url + path,
        content=content,
        timeout=30,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


WRONG_TYPES = [
    # (path, body, words the error must hold)
    (PREDICT, {"instances": [["0.1"] * 784]}, ["string", "'0.1'"]),
    (PREDICT, {"instances": [[True] * 784]}, ["boolean"]),
    (PREDICT, {"instances": [[None] * 784]}, ["null"]),
    (PREDICT, {"instances": [[0.5] * 783 + [False]]}, ["boolean", "value[0][783]"]),
    (PREDICT, {"inputs": [["0.1"] * 784]}, ["string"]),
    (PREDICT, {"inputs": {"inputs": [[True] * 784]}}, ["boolean"]),
    (PREDICT, {"instances": [{"inputs": [None] * 784}]}, ["null"]),
    (PREDICT, {"instances": [[{"x": 1}] * 784]}, ["JSON object"]),
    ("/v1/models/mnist:classify", {"examples": [{"inputs": ["0.1"] * 784}]}, ["string"]),
    (INFER, {"inputs": [v2_input(data=["0.1"] * 784)]}, ["string"]),
    (INFER, {"inputs": [v2_input(data=[True] * 784)]}, ["boolean"]),
    (INFER, {"inputs": [v2_input(data=[None] * 784)]}, ["null"]),
    (INFER, {"inputs": [v2_input(datatype="BOOL", data=[True] * 784)]}, ["datatype 'BOOL'", "FP32"]),
    (INFER, {"inputs": [v2_input(datatype="BYTES", data=["0.1"] * 784)]}, ["datatype 'BYTES'"]),
]


@pytest.mark.parametrize("path, body, words", WRONG_TYPES)
def test_non_numbers_as_pixels_get_400_naming_the_type(server, path: str, body: dict, words: list[str]) -> None:
    response = post(server, path, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert all(word in error for word in words) and "NaN" not in error and "\n" not in error, error


MALFORMED = [
    # (label, path, body, extra headers, status) for cases the server used to answer 200 or 500
    ("nested past any image shape", PREDICT, {"instances": [[[[[0.5]]]]]}, {}, 400),
    ("nested 100000 deep", PREDICT, b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", {}, 400),
    ("rank 100 shape", INFER, {"inputs": [v2_input(shape=[1] * 100, data=[0.5])]}, {}, 400),
    ("shape overflowing int64", INFER, {"inputs": [v2_input(shape=[2**62, 2**62, 784])]}, {}, 400),
    ("shape of floats", INFER, {"inputs": [v2_input(shape=[1.0, 784.0])]}, {}, 400),
    ("shape of booleans", INFER, {"inputs": [v2_input(shape=[True, 784])]}, {}, 400),
    ("empty batch", INFER, {"inputs": [v2_input(shape=[0, 784], data=[])]}, {}, 400),
    ("empty rows", PREDICT, {"instances": [[]]}, {}, 400),
    ("numbers past float32", PREDICT, {"instances": [[1e39] * 784]}, {}, 400),
    ("the same input twice", INFER, {"inputs": [v2_input(), v2_input()]}, {}, 400),
    ("parameters not an object", INFER, {"inputs": [v2_input()], "parameters": ["binary_data_output"]}, {}, 400),
    (
        "output parameters not an object",
        INFER,
        {"inputs": [v2_input()], "outputs": [{"name": "scores", "parameters": [1]}]},
        {},
        400,
    ),
    ("input parameters not an object", INFER, {"inputs": [v2_input(parameters="x")]}, {}, 400),
    ("fullwidth digit version", "/v1/models/mnist/versions/\uff11:predict", {"instances": [IMAGE]}, {}, 404),
    ("unicode model name", "/v1/models/\u00fcnist:predict", {"instances": [IMAGE]}, {}, 404),
    ("unicode label", "/v1/models/mnist/labels/\u2603:predict", {"instances": [IMAGE]}, {}, 404),
    (
        "non-ASCII header length",
        INFER,
        orjson.dumps({"inputs": [v2_input()]}),
        {"Inference-Header-Content-Length": "\u0661\u0660".encode()},
        400,
    ),
]


def binary_request(tensor_bytes: bytes, size: object) -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "images", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": size}}
            ]
        }
    )
    return header + tensor_bytes, {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }


@pytest.mark.parametrize("label, path, body, headers, status", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_malformed_requests_get_a_4xx_in_one_line(
    server, label: str, path: str, body: object, headers: dict[str, str], status: int
) -> None:
    response = post(server, path, body, headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error and "\n" not in error and len(error) < 600


def test_binary_tensor_sizes_must_add_up_to_the_body(server) -> None:
    pixels = np.full(784, 0.5, np.float32).tobytes()
    for extra, size, status in [
        (b"", 3136, 200),
        (b"\x00" * 8, 3136, 400),
        (b"", 3132, 400),
        (b"", True, 400),
        (b"", -4, 400),
        (b"", 1e21, 400),
    ]:
        body, headers = binary_request(pixels + extra, size)
        response = httpx.post(server.rest_url + INFER, content=body, headers=headers, timeout=10)
        assert response.status_code == status, (size, len(extra), response.text)


def tfs_predict(server, tensor: tensor_pb2.TensorProto) -> grpc.RpcError | predict_pb2.PredictResponse:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    request.model_spec.signature_name = "predict_images"
    request.inputs["images"].CopyFrom(tensor)
    with grpc.insecure_channel(server.grpc_address) as channel:
        try:
            return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
        except grpc.RpcError as error:
            return error


def proto(dtype: int, dims: list[int], **values: object) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **values)


@pytest.mark.parametrize(
    "label, tensor, words",
    [
        ("strings", proto(types_pb2.DT_STRING, [1, 784], string_val=[b"0.1"] * 784), ["DT_STRING"]),
        ("booleans", proto(types_pb2.DT_BOOL, [1, 784], bool_val=[True] * 784), ["DT_BOOL"]),
        ("floats in int_val", proto(types_pb2.DT_FLOAT, [1, 784], int_val=[1] * 784), ["int_val", "float_val"]),
        (
            "content and float_val",
            proto(
                types_pb2.DT_FLOAT, [1, 784], float_val=IMAGE, tensor_content=np.full(784, 0.5, np.float32).tobytes()
            ),
            ["tensor_content"],
        ),
        ("rank 1000", proto(types_pb2.DT_FLOAT, [1] * 1000, float_val=[0.5]), ["1000 dimensions"]),
        ("dims overflowing int64", proto(types_pb2.DT_FLOAT, [2**62, 2**62], float_val=[0.5]), ["values"]),
        ("empty batch", proto(types_pb2.DT_FLOAT, [0, 784]), ["shape [0, 784]"]),
    ],
)
def test_tf_serving_grpc_wrong_types_and_shapes_are_invalid_argument(server, label: str, tensor, words) -> None:
    result = tfs_predict(server, tensor)
    assert isinstance(result, grpc.RpcError), label
    assert result.code() == grpc.StatusCode.INVALID_ARGUMENT, (label, result.details())
    assert all(word in result.details() for word in words), result.details()


def test_v2_grpc_wrong_types_are_invalid_argument(server) -> None:
    def infer(datatype: str, **contents: object) -> grpc.RpcError | v2.ModelInferResponse:
        request = v2.ModelInferRequest(model_name="mnist")
        request.inputs.add(
            name="images", datatype=datatype, shape=[1, 784], contents=v2.InferTensorContents(**contents)
        )
        with grpc.insecure_channel(server.grpc_address) as channel:
            try:
                return v2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
            except grpc.RpcError as error:
                return error

    for datatype, contents, words in [
        ("BOOL", {"bool_contents": [True] * 784}, ["BOOL"]),
        ("BYTES", {"bytes_contents": [b"0.1"] * 784}, ["BYTES"]),
        ("FP32", {"bool_contents": [True] * 784}, ["bool_contents", "fp32_contents"]),
        ("FP16", {"fp32_contents": IMAGE}, ["raw_input_contents"]),
    ]:
        result = infer(datatype, **contents)
        assert isinstance(result, grpc.RpcError), datatype
        assert result.code() == grpc.StatusCode.INVALID_ARGUMENT and all(w in result.details() for w in words), (
            result.details()
        )
    assert {o.name: list(o.shape) for o in infer("FP32", fp32_contents=IMAGE).outputs}["scores"] == [1, 10]


def test_an_empty_v2_outputs_list_means_every_output_as_over_grpc(server) -> None:
    response = post(server, INFER, {"inputs": [v2_input()], "outputs": []})
    assert response.status_code == 200
    assert sorted(o["name"] for o in response.json()["outputs"]) == ["classes", "scores"]


def test_many_instances_in_one_request_are_answered(server) -> None:
    response = post(server, PREDICT, {"signature_name": "predict_images", "instances": [IMAGE] * 2000})
    assert response.status_code == 200
    assert [p["classes"] for p in response.json()["predictions"]] == [6] * 2000


def test_serve_refuses_an_invalid_model_name_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainflow",
            "serve",
            "--model-name",
            "x; touch /tmp/pwned",
            "--model-base-path",
            str(tmp_path),
            "--rest-port",
            "0",
            "--grpc-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TRAINFLOW_LOG_LEVEL": "ERROR"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model name 'x; touch /tmp/pwned' is not valid"), lines
