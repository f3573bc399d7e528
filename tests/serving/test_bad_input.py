"""Malformed requests on every route get a 4xx with a one-line {"error": ...}; the server keeps serving."""

from __future__ import annotations

import base64
import json
import threading

import grpc
import httpx
import numpy as np
import pytest

from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as v2
from trainflow.serving.protos.kserve import grpc_predict_v2_pb2_grpc as v2_grpc
from trainflow.serving.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from trainflow.serving.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

GOOD_IMAGE = [0.5] * 784
PREDICT = "/v1/models/mnist:predict"
INFER = "/v2/models/mnist/infer"


def v2_body(**overrides: object) -> dict:
    tensor = {"name": "images", "shape": [1, 784], "datatype": "FP32", "data": GOOD_IMAGE}
    tensor.update(overrides)
    return {"inputs": [tensor]}


REST_BATTERY = [
    # (method, path, json body or raw bytes, extra headers, expected status)
    ("POST", PREDICT, b"", {}, 400),
    ("POST", PREDICT, b"{not json", {}, 400),
    ("POST", PREDICT, b"[1, 2]", {}, 400),
    ("POST", PREDICT, b"\xff\xfe\x00", {}, 400),
    ("POST", PREDICT, {"instances": []}, {}, 400),
    ("POST", PREDICT, {"instances": [[0.5] * 10]}, {}, 400),
    ("POST", PREDICT, {"instances": [[0.5] * 783 + [2.0]]}, {}, 400),
    ("POST", PREDICT, {"instances": [["x"] * 784]}, {}, 400),
    ("POST", PREDICT, {"instances": [[0.1], [0.1, 0.2]]}, {}, 400),
    ("POST", PREDICT, {"instances": [[None] * 784]}, {}, 400),
    ("POST", PREDICT, b'{"instances": [[NaN' + b", 0.5" * 783 + b"]]}", {}, 400),
    ("POST", PREDICT, {"instances": [GOOD_IMAGE], "inputs": [GOOD_IMAGE]}, {}, 400),
    ("POST", PREDICT, {"signature_name": 7, "instances": [GOOD_IMAGE]}, {}, 400),
    ("POST", PREDICT, {"signature_name": "nope", "instances": [GOOD_IMAGE]}, {}, 404),
    ("POST", PREDICT, {"signature_name": "predict_images", "instances": [{"pixels": GOOD_IMAGE}]}, {}, 400),
    ("POST", PREDICT, {"signature_name": "predict_images", "inputs": {"pixels": GOOD_IMAGE}}, {}, 400),
    ("POST", PREDICT, {"instances": [{"b64": "!!not base64!!"}]}, {}, 400),
    ("POST", PREDICT, {"instances": [{"b64": base64.b64encode(b"not an image").decode()}]}, {}, 400),
    ("POST", PREDICT, {"instances": [{"b64": 5}]}, {}, 400),
    ("POST", PREDICT, {"instances": [[[0.5] * 392] * 2]}, {}, 400),
    ("POST", "/v1/models/other:predict", {"instances": [GOOD_IMAGE]}, {}, 404),
    ("POST", "/v1/models/mnist/versions/9:predict", {"instances": [GOOD_IMAGE]}, {}, 404),
    ("POST", "/v1/models/mnist/versions/abc:predict", {"instances": [GOOD_IMAGE]}, {}, 404),
    ("POST", "/v1/models/mnist/labels/stable:predict", {"instances": [GOOD_IMAGE]}, {}, 404),
    ("POST", "/v1/models/mnist:regress", {"examples": [{"inputs": GOOD_IMAGE}]}, {}, 400),
    ("POST", "/v1/models/mnist:frobnicate", {"instances": [GOOD_IMAGE]}, {}, 404),
    ("GET", PREDICT, None, {}, 404),
    ("POST", "/v1/models/mnist:classify", {"examples": 5}, {}, 400),
    ("POST", "/v1/models/mnist:classify", {"examples": [{"images": GOOD_IMAGE}]}, {}, 400),
    ("POST", "/v1/models/mnist:classify", {"examples": [5]}, {}, 400),
    (
        "POST",
        "/v1/models/mnist:classify",
        {"signature_name": "predict_images", "examples": [{"inputs": GOOD_IMAGE}]},
        {},
        400,
    ),
    ("GET", "/v1/models/other", None, {}, 404),
    ("GET", "/v1/models/mnist/versions/7/metadata", None, {}, 404),
    ("POST", "/v1/models/mnist/metadata", {}, {}, 404),
    ("POST", INFER, b"", {}, 400),
    ("POST", INFER, {"inputs": []}, {}, 400),
    ("POST", INFER, {"inputs": [5]}, {}, 400),
    ("POST", INFER, v2_body(datatype="INT32"), {}, 400),
    ("POST", INFER, v2_body(datatype="BYTES", data=["a"]), {}, 400),
    ("POST", INFER, v2_body(shape=[1, 10]), {}, 400),
    ("POST", INFER, v2_body(shape=[1, 10], data=[0.5] * 10), {}, 400),
    ("POST", INFER, v2_body(shape=[-1, 784]), {}, 400),
    ("POST", INFER, v2_body(shape="big"), {}, 400),
    ("POST", INFER, v2_body(name="pixels"), {}, 400),
    ("POST", INFER, v2_body(data=[float("nan")] * 784), {}, 400),
    ("POST", INFER, v2_body(data=None), {}, 400),
    ("POST", INFER, {**v2_body(), "outputs": [{"name": "logits"}]}, {}, 400),
    ("POST", INFER, {**v2_body(), "outputs": "scores"}, {}, 400),
    ("POST", INFER, v2_body(), {"Inference-Header-Content-Length": "999999"}, 400),
    ("POST", INFER, v2_body(), {"Inference-Header-Content-Length": "abc"}, 400),
    (
        "POST",
        INFER,
        {
            "inputs": [
                {"name": "images", "shape": [1, 784], "datatype": "FP32", "parameters": {"binary_data_size": 3136}}
            ]
        },
        {},
        400,
    ),
    ("POST", "/v2/models/other/infer", v2_body(), {}, 404),
    ("POST", "/v2/models/mnist/versions/5/infer", v2_body(), {}, 404),
    ("GET", INFER, None, {}, 404),
    ("GET", "/v2/models/other", None, {}, 404),
    ("GET", "/v2/models/other/ready", None, {}, 404),
    ("GET", "/v2/models/mnist/versions/x/ready", None, {}, 404),
    ("GET", "/v3/anything", None, {}, 404),
    ("DELETE", "/v2/health/live", None, {}, 405),
]


def send(server, method: str, path: str, body: object, headers: dict) -> httpx.Response:
    if body is None:
        return httpx.request(method, server.rest_url + path, headers=headers)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.request(
        method, server.rest_url + path, content=content, headers={"Content-Type": "application/json", **headers}
    )


def test_malformed_rest_requests_get_4xx_with_one_line_error(server) -> None:
    for method, path, body, headers, status in REST_BATTERY:
        response = send(server, method, path, body, headers)
        case = f"{method} {path} {str(body)[:80]}"
        assert response.status_code == status, f"{case}: {response.status_code} {response.text[:200]}"
        error = response.json()["error"]
        assert isinstance(error, str) and error and "\n" not in error, case
    good = send(server, "POST", PREDICT, {"signature_name": "predict_images", "instances": [GOOD_IMAGE]}, {})
    assert good.status_code == 200
    assert httpx.get(server.rest_url + "/v2/health/live").json() == {"live": True}


def test_shape_errors_name_the_input_and_the_expected_shape(server) -> None:
    error = send(server, "POST", PREDICT, {"signature_name": "predict_images", "instances": [[0.5] * 10]}, {}).json()[
        "error"
    ]
    assert "'images'" in error and "[N, 784]" in error and "[N, 28, 28]" in error
    error = send(server, "POST", INFER, v2_body(datatype="INT32"), {}).json()["error"]
    assert "'images'" in error and "FP32" in error


def tfs_request(**spec: object) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = str(spec.get("name", "mnist"))
    request.model_spec.signature_name = "predict_images"
    if "version" in spec:
        request.model_spec.version.value = int(spec["version"])
    if "label" in spec:
        request.model_spec.version_label = str(spec["label"])
    return request


def tensor(
    values: np.ndarray,
    dtype: int = types_pb2.DT_FLOAT,
    shape: tuple[int, ...] | None = None,
    content: bytes | None = None,
) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in (shape or values.shape)]
        ),
    )
    proto.tensor_content = content if content is not None else values.astype(np.float32).tobytes()
    return proto


def grpc_battery() -> list[tuple[str, predict_pb2.PredictRequest, grpc.StatusCode]]:
    good = np.full((1, 784), 0.5, dtype=np.float32)
    cases = []
    for label, spec, inputs, code in [
        ("unknown model", {"name": "other"}, {"images": tensor(good)}, grpc.StatusCode.NOT_FOUND),
        ("unknown version", {"version": 9}, {"images": tensor(good)}, grpc.StatusCode.NOT_FOUND),
        ("unknown label", {"label": "stable"}, {"images": tensor(good)}, grpc.StatusCode.NOT_FOUND),
        ("int dtype", {}, {"images": tensor(good, types_pb2.DT_INT32)}, grpc.StatusCode.INVALID_ARGUMENT),
        ("missing input", {}, {}, grpc.StatusCode.INVALID_ARGUMENT),
        ("extra input", {}, {"images": tensor(good), "x": tensor(good)}, grpc.StatusCode.INVALID_ARGUMENT),
        ("wrong shape", {}, {"images": tensor(np.zeros((1, 10)))}, grpc.StatusCode.INVALID_ARGUMENT),
        ("short content", {}, {"images": tensor(good, content=b"abc")}, grpc.StatusCode.INVALID_ARGUMENT),
        ("shape vs content", {}, {"images": tensor(good, shape=(2, 784))}, grpc.StatusCode.INVALID_ARGUMENT),
        ("nan", {}, {"images": tensor(np.full((1, 784), np.nan))}, grpc.StatusCode.INVALID_ARGUMENT),
        ("negative dim", {}, {"images": tensor(good, shape=(-1, 784))}, grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        request = tfs_request(**spec)
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(value)
        cases.append((label, request, code))
    filtered = tfs_request()
    filtered.inputs["images"].CopyFrom(tensor(good))
    filtered.output_filter.append("logits")
    cases.append(("unknown output_filter", filtered, grpc.StatusCode.INVALID_ARGUMENT))
    return cases


def test_malformed_grpc_requests_get_status_codes_and_server_keeps_serving(server) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for label, request, code in grpc_battery():
            with pytest.raises(grpc.RpcError) as caught:
                stub.Predict(request, timeout=10)
            assert caught.value.code() == code, label
            assert caught.value.details() and "\n" not in caught.value.details(), label
        metadata = get_model_metadata_pb2.GetModelMetadataRequest()
        metadata.model_spec.name = "mnist"
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetModelMetadata(metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        v2_stub = v2_grpc.GRPCInferenceServiceStub(channel)
        for label, request, code in v2_battery():
            with pytest.raises(grpc.RpcError) as caught:
                v2_stub.ModelInfer(request, timeout=10)
            assert caught.value.code() == code, label
        good = tfs_request()
        good.inputs["images"].CopyFrom(tensor(np.full((1, 784), 0.5)))
        assert len(stub.Predict(good).outputs["scores"].float_val) == 10


def v2_battery() -> list[tuple[str, v2.ModelInferRequest, grpc.StatusCode]]:
    def request(
        name: str = "mnist",
        datatype: str = "FP32",
        shape: tuple = (1, 784),
        raw: list[bytes] | None = None,
        version: str = "",
    ) -> v2.ModelInferRequest:
        message = v2.ModelInferRequest(model_name=name, model_version=version)
        message.inputs.add(name="images", datatype=datatype, shape=shape)
        message.raw_input_contents.extend(raw if raw is not None else [np.zeros(784, np.float32).tobytes()])
        return message

    return [
        ("unknown model", request(name="other"), grpc.StatusCode.NOT_FOUND),
        ("unknown version", request(version="4"), grpc.StatusCode.NOT_FOUND),
        ("bad datatype", request(datatype="INT64"), grpc.StatusCode.INVALID_ARGUMENT),
        ("raw size", request(raw=[b"\x00" * 12]), grpc.StatusCode.INVALID_ARGUMENT),
        ("two raws", request(raw=[b"", b""]), grpc.StatusCode.INVALID_ARGUMENT),
        (
            "wrong shape",
            request(shape=(1, 10), raw=[np.zeros(10, np.float32).tobytes()]),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        ("no data", request(raw=[]), grpc.StatusCode.INVALID_ARGUMENT),
    ]


def test_oversized_requests_get_413_and_resource_exhausted(start_server, model_base) -> None:
    big = np.full((20, 784), 0.5).tolist()
    with start_server(model_base, max_request_bytes=20_000) as server:
        response = httpx.post(server.rest_url + PREDICT, json={"instances": big})
        assert response.status_code == 413 and "--max-request-bytes" in response.json()["error"]
        chunked = httpx.post(server.rest_url + INFER, content=iter([json.dumps(v2_body()).encode()] * 20))
        assert chunked.status_code == 413
        with grpc.insecure_channel(server.grpc_address) as channel:
            request = tfs_request()
            request.inputs["images"].CopyFrom(tensor(np.full((20, 784), 0.5)))
            with pytest.raises(grpc.RpcError) as caught:
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        ok = httpx.post(server.rest_url + PREDICT, json={"signature_name": "predict_images", "instances": big[:2]})
        assert ok.status_code == 200


def test_saturated_server_answers_503_and_unavailable_at_once(start_server, model_base) -> None:
    # one slot, and batching that holds the first request for 1.5 s: the second finds the slot taken
    with start_server(model_base, max_concurrency=1, max_batch_size=64, batch_timeout_micros=1_500_000) as server:
        first: list[httpx.Response] = []
        holder = threading.Thread(
            target=lambda: first.append(
                httpx.post(
                    server.rest_url + PREDICT,
                    json={"signature_name": "predict_images", "instances": [GOOD_IMAGE]},
                    timeout=30,
                )
            )
        )
        holder.start()
        while "trainflow_requests_in_flight 1.0" not in httpx.get(server.rest_url + "/metrics").text:
            pass
        busy = httpx.post(server.rest_url + PREDICT, json={"instances": [GOOD_IMAGE]}, timeout=1)
        assert busy.status_code == 503 and "busy" in busy.json()["error"]
        with grpc.insecure_channel(server.grpc_address) as channel:
            request = tfs_request()
            request.inputs["images"].CopyFrom(tensor(np.full((1, 784), 0.5)))
            with pytest.raises(grpc.RpcError) as caught:
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=1)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        holder.join()
        assert first[0].status_code == 200
