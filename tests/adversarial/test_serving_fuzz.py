"""Property-based fuzz of every request decoder against a real server on loopback (issue 10, keep them closed).

Hypothesis builds requests that are nearly right (one field off, wrong types, odd shapes and sizes) or not
right at all, for TF Serving REST, V2 JSON, V2 binary, TF Serving gRPC and V2 gRPC. Whatever it sends, the
server answers a 4xx / INVALID_ARGUMENT-like status with a one-line error, or a correct answer (the model
always says 6); never a 5xx or INTERNAL, and it stays healthy. Example counts are bounded: a few seconds.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from hostile_images import bilevel_png
from live_server import running_server
from model_files import constant_classifier_onnx, publish

from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as v2
from trainflow.serving.protos.kserve import grpc_predict_v2_pb2_grpc as v2_grpc
from trainflow.serving.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from trainflow.serving.protos.tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

ANSWER = 6
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
GRPC_CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNIMPLEMENTED,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    base = tmp_path_factory.mktemp("fuzz") / "mnist"
    publish(base, 1, constant_classifier_onnx(ANSWER))
    with running_server(
        base, max_request_bytes=1_000_000, max_image_pixels=250_000, max_request_pixels=1_000_000
    ) as started:
        yield started
        assert httpx.get(started.rest_url + "/v2/health/ready").json() == {"ready": True}
        assert started.plane.in_flight == 0


@pytest.fixture(scope="module")
def rest(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.rest_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def channel(server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_address) as opened:
        yield opened


# --- values: numbers that are pixels, and everything that is not -----------------------------------------------
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.sampled_from(["0.1", "1", "1e3", "nan", "inf"])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
pixels = st.floats(0, 1, width=32)
good_image = st.builds(lambda value: [value] * 784, pixels)
near_image = st.builds(
    lambda value, bad, at: [value] * at + [bad] + [value] * (783 - at), pixels, scalars, st.integers(0, 783)
)
square_image = st.builds(lambda value: [[value] * 28] * 28, pixels)
b64_image = st.one_of(
    st.builds(lambda side: {"b64": base64.b64encode(bilevel_png(side, side)).decode()}, st.integers(1, 600)),
    st.builds(lambda data: {"b64": base64.b64encode(data).decode()}, st.binary(max_size=64)),
    st.builds(lambda text: {"b64": text}, st.text(max_size=12)),
)
image = st.one_of(
    good_image, good_image, square_image, near_image, b64_image, json_values, st.lists(pixels, max_size=800)
)
images = st.lists(image, min_size=0, max_size=4)


# --- what a correct answer is -----------------------------------------------------------------------------------
def assert_scores_say_the_answer(scores: object) -> None:
    rows = np.asarray(scores, dtype=np.float64).reshape(-1, 10)
    assert np.isfinite(rows).all() and (rows.argmax(axis=1) == ANSWER).all(), scores


def holds_non_numbers(value: object) -> bool:
    """Whether pixel data holds anything but numbers (a `{"b64": ...}` image is not pixel data)."""
    if isinstance(value, dict):
        return set(value) != {"b64"} and any(holds_non_numbers(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_non_numbers(v) for v in value)
    return type(value) not in (int, float)


def assert_rest_answer(response: httpx.Response, pixel_data: object = None) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code == 200:
        assert not holds_non_numbers(pixel_data), f"accepted non-numbers as pixels: {str(pixel_data)[:300]}"
    if response.status_code >= 400:
        assert isinstance(body["error"], str) and body["error"] and "\n" not in body["error"]
        return
    if "predictions" in body:
        rows = body["predictions"]
        assert rows and all(isinstance(row, dict) for row in rows)
        assert_scores_say_the_answer([row["scores"] for row in rows])
    elif "outputs" in body and isinstance(body["outputs"], dict):
        assert_scores_say_the_answer(body["outputs"]["scores"])
    elif "result" in body:
        for row in body["result"]:
            assert max(row, key=lambda pair: pair[1])[0] == str(ANSWER)
    else:
        outputs = {o["name"]: o for o in body["outputs"]}
        assert_scores_say_the_answer(outputs["scores"]["data"])
        assert set(outputs["classes"]["data"]) == {ANSWER}


# --- TF Serving REST ---------------------------------------------------------------------------------------------
tfs_paths = st.sampled_from(
    [
        "/v1/models/mnist:predict",
        "/v1/models/mnist/versions/1:predict",
        "/v1/models/mnist:classify",
        "/v1/models/mnist:regress",
        "/v1/models/mnist/versions/2:predict",
        "/v1/models/mnist/labels/x:predict",
    ]
)
signatures = st.sampled_from(["predict_images", "serving_default", "", "nope"]) | json_values
tfs_bodies = st.fixed_dictionaries(
    {},
    optional={
        "signature_name": signatures,
        "instances": images | st.lists(st.fixed_dictionaries({"images": image}), max_size=3) | json_values,
        "inputs": images
        | st.fixed_dictionaries({"images": images})
        | st.fixed_dictionaries({"inputs": images})
        | b64_image
        | json_values,
        "examples": st.lists(st.fixed_dictionaries({"inputs": image}) | json_values, max_size=3) | json_values,
        "context": json_values,
    },
)


near_tfs_bodies = st.builds(
    lambda signature, key, rows: {"signature_name": signature, key: rows},
    st.sampled_from(["predict_images", "serving_default"]),
    st.sampled_from(["instances", "inputs"]),
    st.lists(good_image | near_image, min_size=1, max_size=3),
)


def tfs_pixel_data(body: object) -> object:
    if not isinstance(body, dict):
        return None
    return [body[key] for key in ("instances", "inputs", "examples") if key in body]


@FUZZ
@given(path=tfs_paths, body=near_tfs_bodies | tfs_bodies | json_values)
def test_tf_serving_rest_answers_4xx_or_right(rest: httpx.Client, path: str, body: object) -> None:
    response = rest.post(path, content=orjson.dumps(body), headers={"Content-Type": "application/json"})
    assert_rest_answer(response, tfs_pixel_data(body) if response.status_code == 200 else None)


@FUZZ
@given(body=st.binary(max_size=200) | st.builds(lambda n: b"[" * n + b"0" + b"]" * n, st.integers(1, 3000)))
def test_rest_bodies_that_are_not_json_get_400(rest: httpx.Client, body: bytes) -> None:
    for path in ("/v1/models/mnist:predict", "/v2/models/mnist/infer"):
        assert_rest_answer(rest.post(path, content=body))


# --- KServe V2 REST, JSON and binary -----------------------------------------------------------------------------
datatypes = st.sampled_from(["FP32", "FP32", "FP64", "FP16", "INT32", "INT64", "BOOL", "BYTES", "fp32", ""])
dims = st.lists(st.integers(-2, 3) | st.sampled_from([784, 28, 2**31, 2**62]), max_size=5)
shapes = st.one_of(st.just([1, 784]), st.just([2, 28, 28]), st.just([1, 1, 28, 28]), dims, json_values)
VALID_V2 = {"name": "images", "datatype": "FP32", "shape": [1, 784], "data": [0.5] * 784}
near_values = {
    "name": json_values,
    "datatype": datatypes | json_values,
    "shape": dims | st.lists(st.just(1), min_size=5, max_size=100) | json_values,
    "data": near_image | st.lists(near_image, min_size=1, max_size=2) | json_values,
    "parameters": json_values | st.fixed_dictionaries({"binary_data_size": json_values}),
}
near_v2_tensor = st.sampled_from(sorted(near_values)).flatmap(
    lambda key: near_values[key].map(lambda value: {**VALID_V2, key: value})
)
rank_padded_tensor = st.builds(lambda rank: {**VALID_V2, "shape": [1] * (rank - 1) + [784]}, st.integers(5, 80))
any_v2_tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["images", "images", "x"]) | json_values,
        "datatype": datatypes | json_values,
        "shape": shapes,
    },
    optional={
        "data": images | st.lists(pixels, max_size=1600) | json_values,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_size": st.integers(-8, 7000) | json_values})
        | json_values,
    },
)
v2_tensor = near_v2_tensor | rank_padded_tensor | any_v2_tensor
v2_outputs = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["scores", "classes", "logits"])},
        optional={"parameters": st.fixed_dictionaries({"binary_data": st.booleans()}) | json_values},
    ),
    max_size=3,
)
v2_headers = st.fixed_dictionaries(
    {"inputs": st.lists(v2_tensor, min_size=1, max_size=2) | json_values},
    optional={
        "id": json_values,
        "outputs": v2_outputs | json_values,
        "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": json_values}) | json_values,
    },
)
v2_paths = st.sampled_from(
    [
        "/v2/models/mnist/infer",
        "/v2/models/mnist/versions/1/infer",
        "/v2/models/mnist/versions/7/infer",
        "/v2/models/other/infer",
    ]
)


def v2_pixel_data(header: object) -> object:
    inputs = header.get("inputs") if isinstance(header, dict) else None
    if not isinstance(inputs, list):
        return None
    return [
        t["data"]
        for t in inputs
        if isinstance(t, dict)
        and "data" in t
        and not (isinstance(t.get("parameters"), dict) and "binary_data_size" in t["parameters"])
    ]


def assert_v2_answer(response: httpx.Response, header: object) -> None:
    length = response.headers.get("inference-header-content-length")
    if response.status_code != 200 or length is None:
        assert_rest_answer(response, v2_pixel_data(header) if response.status_code == 200 else None)
        return
    answer = orjson.loads(response.content[: int(length)])
    blobs, offset = response.content[int(length) :], 0
    for output in answer["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            dtype = {"FP32": np.float32, "INT64": np.int64}[output["datatype"]]
            output["data"] = np.frombuffer(blobs[offset : offset + size], dtype=dtype).tolist()
            offset += size
    assert offset == len(blobs)
    assert_rest_answer(httpx.Response(200, json=answer), v2_pixel_data(header))


@FUZZ
@given(path=v2_paths, header=v2_headers)
def test_v2_json_answers_4xx_or_right(rest: httpx.Client, path: str, header: dict) -> None:
    response = rest.post(path, content=orjson.dumps(header), headers={"Content-Type": "application/json"})
    assert_v2_answer(response, header)


@FUZZ
@given(
    header=v2_headers,
    payload=st.binary(max_size=64)
    | st.builds(lambda n, v: np.full(n, v, np.float32).tobytes(), st.sampled_from([784, 1568, 783]), pixels),
    declared=st.sampled_from(["exact", "short", "long", "text"]),
)
def test_v2_binary_answers_4xx_or_right(rest: httpx.Client, header: dict, payload: bytes, declared: str) -> None:
    encoded = orjson.dumps(header)
    length = {
        "exact": str(len(encoded)),
        "short": str(max(0, len(encoded) - 3)),
        "long": str(len(encoded) + len(payload) + 1),
        "text": "12a",
    }[declared]
    response = rest.post(
        "/v2/models/mnist/infer",
        content=encoded + payload,
        headers={"Inference-Header-Content-Length": length, "Content-Type": "application/octet-stream"},
    )
    assert_v2_answer(response, header)


# --- gRPC: TF Serving Predict and V2 ModelInfer --------------------------------------------------------------------
dtype_codes = st.sampled_from(
    [
        types_pb2.DT_FLOAT,
        types_pb2.DT_FLOAT,
        types_pb2.DT_DOUBLE,
        types_pb2.DT_INT32,
        types_pb2.DT_STRING,
        types_pb2.DT_BOOL,
        types_pb2.DT_HALF,
    ]
) | st.integers(0, 300)
grpc_dims = st.one_of(
    st.just([1, 784]),
    st.just([2, 28, 28]),
    st.lists(st.integers(-3, 3) | st.sampled_from([784, 28, 2**40, 2**62]), max_size=6),
)
grpc_values = st.one_of(
    st.builds(lambda n, v: [v] * n, st.sampled_from([784, 1568, 0, 10]), pixels),
    st.lists(st.floats(width=32), max_size=20),
)


@FUZZ
@given(
    name=st.sampled_from(["mnist", "mnist", "other"]) | st.text(max_size=8),
    dtype=dtype_codes,
    shape=grpc_dims,
    values=grpc_values,
    content=st.none() | st.binary(max_size=40) | st.just(np.zeros(784, np.float32).tobytes()),
    signature=st.sampled_from(["predict_images", "serving_default", "", "x"]),
    version=st.none() | st.integers(0, 2**40),
    input_name=st.sampled_from(["images", "inputs", "x"]),
)
def test_tf_serving_grpc_answers_client_errors_or_right(
    channel: grpc.Channel,
    name: str,
    dtype: int,
    shape: list[int],
    values: list[float],
    content: bytes | None,
    signature: str,
    version: int | None,
    input_name: str,
) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    tensor = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]
        ),
        float_val=values,
    )
    if content is not None:
        tensor.tensor_content = content
    request.inputs[input_name].CopyFrom(tensor)
    try:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    except grpc.RpcError as error:
        assert error.code() in GRPC_CLIENT_ERRORS, (error.code(), error.details())
        assert error.details() and "\n" not in error.details()
        return
    assert_scores_say_the_answer(list(response.outputs["scores"].float_val))


@FUZZ
@given(
    datatype=datatypes,
    shape=grpc_dims,
    values=grpc_values,
    raw=st.none() | st.lists(st.binary(max_size=40) | st.just(np.full(784, 0.5, np.float32).tobytes()), max_size=2),
    version=st.sampled_from(["", "1", "2", "x", "\uff11"]),
    input_name=st.sampled_from(["images", "x"]),
    outputs=st.lists(st.sampled_from(["scores", "classes", "logits"]), max_size=2),
)
def test_v2_grpc_answers_client_errors_or_right(
    channel: grpc.Channel,
    datatype: str,
    shape: list[int],
    values: list[float],
    raw: list[bytes] | None,
    version: str,
    input_name: str,
    outputs: list[str],
) -> None:
    request = v2.ModelInferRequest(model_name="mnist", model_version=version)
    request.inputs.add(
        name=input_name, datatype=datatype, shape=shape, contents=v2.InferTensorContents(fp32_contents=values)
    )
    if raw is not None:
        request.raw_input_contents.extend(raw)
    for output in outputs:
        request.outputs.add(name=output)
    try:
        response = v2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    except grpc.RpcError as error:
        assert error.code() in GRPC_CLIENT_ERRORS, (error.code(), error.details())
        assert error.details() and "\n" not in error.details()
        return
    for output, content in zip(response.outputs, response.raw_output_contents, strict=True):
        if output.name == "scores":
            assert_scores_say_the_answer(np.frombuffer(content, np.float32))
        else:
            assert set(np.frombuffer(content, np.int64)) == {ANSWER}


def test_the_server_is_healthy_after_the_fuzz(server, rest: httpx.Client) -> None:
    assert rest.get("/v2/health/live").json() == {"live": True}
    good = rest.post("/v1/models/mnist:predict", json={"signature_name": "predict_images", "instances": [[0.5] * 784]})
    assert good.status_code == 200 and good.json()["predictions"][0]["classes"] == ANSWER
    errors = [
        line
        for line in rest.get("/metrics").text.splitlines()
        if line.startswith("trainflow_request_errors_total") and 'error="Internal"' in line
    ]
    assert errors == []
