"""A user's own ONNX model with a signature.json: two inputs (int64 and float32), served over all four protocols."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from live_server import running_server
from model_files import PAIR_CLASSES, pair_expected, pair_model_onnx, pair_signature, publish
from tritonclient.utils import InferenceServerException

from trainflow.serving.protos.tensorflow.core.example import example_pb2, feature_pb2
from trainflow.serving.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from trainflow.serving.protos.tensorflow_serving.apis import (
    classification_pb2,
    input_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

IDS = np.array([[0, 1, 2], [3, 0, 1], [2, 2, 2], [1, 0, 0]], np.int64)
X = np.random.default_rng(3).normal(size=(4, 4)).astype(np.float32)
MODEL = "pair"


@pytest.fixture(scope="module")
def pair_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pair") / MODEL
    publish(base, 1, pair_model_onnx(), pair_signature())
    return base


@pytest.fixture(scope="module")
def server(pair_base: Path) -> Iterator[object]:
    with running_server(pair_base, model_name=MODEL) as started:
        assert started.wait_ready(30)
        yield started


def rest(server, verb: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.rest_url}/v1/models/{MODEL}:{verb}", json=body, timeout=30)


def proto(value: np.ndarray, dtype: int | None = None) -> tensor_pb2.TensorProto:
    code = dtype or (types_pb2.DT_INT64 if value.dtype == np.int64 else types_pb2.DT_FLOAT)
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in value.shape])
    return tensor_pb2.TensorProto(dtype=code, tensor_shape=shape, tensor_content=value.tobytes())


def grpc_predict(server, inputs: dict[str, tensor_pb2.TensorProto]) -> predict_pb2.PredictResponse:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "predict"
    for name, tensor in inputs.items():
        request.inputs[name].CopyFrom(tensor)
    with grpc.insecure_channel(server.grpc_address) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)


def triton_scores(module, address: str, ids_datatype: str = "INT64") -> np.ndarray:
    client = module.InferenceServerClient(address)
    ids = module.InferInput("ids", list(IDS.shape), ids_datatype)
    ids.set_data_from_numpy(IDS if ids_datatype == "INT64" else IDS.astype(np.float32))
    x = module.InferInput("x", list(X.shape), "FP32")
    x.set_data_from_numpy(X)
    try:
        return client.infer(MODEL, [ids, x], outputs=[module.InferRequestedOutput("scores")]).as_numpy("scores")
    finally:
        client.close()


def test_a_two_input_model_answers_the_same_on_all_four_protocols(server) -> None:
    expected = pair_expected(IDS, X)
    rows = [{"ids": i.tolist(), "x": x.tolist()} for i, x in zip(IDS, X, strict=True)]
    by_rows = rest(server, "predict", {"signature_name": "predict", "instances": rows})
    assert by_rows.status_code == 200, by_rows.text
    columns = {"ids": IDS.tolist(), "x": X.tolist()}
    by_columns = rest(server, "predict", {"signature_name": "predict", "inputs": columns})
    assert by_columns.status_code == 200, by_columns.text
    answers = {
        "tfs-rest-rows": np.array([p["scores"] for p in by_rows.json()["predictions"]]),
        "tfs-rest-columns": np.array(by_columns.json()["outputs"]["scores"]),
        "tfs-grpc": np.array(grpc_predict(server, {"ids": proto(IDS), "x": proto(X)}).outputs["scores"].float_val),
        "v2-rest": triton_scores(triton_http, server.rest_url.removeprefix("http://")),
        "v2-grpc": triton_scores(triton_grpc, server.grpc_address),
    }
    for protocol, scores in answers.items():
        np.testing.assert_allclose(scores.reshape(4, 3), expected, rtol=1e-5, atol=1e-6, err_msg=protocol)


def test_classify_answers_class_names_sorted_by_score(server) -> None:
    examples = [{"ids": i.tolist(), "x": x.tolist()} for i, x in zip(IDS, X, strict=True)]
    response = rest(server, "classify", {"examples": examples})
    assert response.status_code == 200, response.text
    expected = pair_expected(IDS, X)
    for pairs, row in zip(response.json()["result"], expected, strict=True):
        order = np.argsort(-row)
        assert [label for label, _ in pairs] == [PAIR_CLASSES[i] for i in order]
        np.testing.assert_allclose([score for _, score in pairs], row[order], rtol=1e-5)


def grpc_classify(server, examples: list[dict[str, feature_pb2.Feature]]) -> classification_pb2.ClassificationResponse:
    request = classification_pb2.ClassificationRequest(
        input=input_pb2.Input(
            example_list=input_pb2.ExampleList(
                examples=[example_pb2.Example(features=feature_pb2.Features(feature=e)) for e in examples]
            )
        )
    )
    request.model_spec.name = MODEL
    with grpc.insecure_channel(server.grpc_address) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Classify(request, timeout=30)


def test_grpc_classify_answers_class_names_sorted_by_score(server) -> None:
    examples = [
        {
            "ids": feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=i.tolist())),
            "x": feature_pb2.Feature(float_list=feature_pb2.FloatList(value=x.tolist())),
        }
        for i, x in zip(IDS, X, strict=True)
    ]
    response = grpc_classify(server, examples)
    assert response.model_spec.signature_name == "serving_default" and response.model_spec.version.value >= 1
    for classified, row in zip(response.result.classifications, pair_expected(IDS, X), strict=True):
        order = np.argsort(-row)
        assert [c.label for c in classified.classes] == [PAIR_CLASSES[i] for i in order]
        np.testing.assert_allclose([c.score for c in classified.classes], row[order], rtol=1e-5)
    with pytest.raises(grpc.RpcError) as caught:
        grpc_classify(server, [{"ids": examples[0]["ids"]}])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "missing ['x']" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        short = feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[1.0]))
        grpc_classify(server, [{**examples[0], "x": short}])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "'x' has 1 values" in caught.value.details()


@pytest.mark.parametrize(
    "body, words",
    [
        ({"inputs": {"ids": IDS.tolist(), "x": X[:, :3].tolist()}}, ["'x'", "[4, 3]", "float32 [N, 4]"]),
        ({"inputs": {"ids": IDS[:, :2].tolist(), "x": X.tolist()}}, ["'ids'", "int64 [N, 3]"]),
        ({"inputs": {"ids": (IDS + 0.5).tolist(), "x": X.tolist()}}, ["'ids'", "whole numbers"]),
        ({"inputs": {"ids": IDS[:2].tolist(), "x": X.tolist()}}, ["different numbers of examples"]),
        ({"inputs": {"x": X.tolist()}}, ["'ids'", "the inputs are"]),
        ({"inputs": {"ids": IDS.tolist(), "x": X.tolist(), "z": [1]}}, ["'z'"]),
        ({"instances": [{"ids": [1, 2, 3]}]}, ["'ids'", "'x'"]),
        ({"inputs": {"ids": {"b64": "AAAA"}, "x": X.tolist()}}, ["'ids'", "takes numbers"]),
    ],
)
def test_wrong_shapes_and_dtypes_are_refused_naming_the_input(server, body: dict, words: list[str]) -> None:
    response = rest(server, "predict", {"signature_name": "predict", **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert all(word in error for word in words) and "\n" not in error, error


def test_wrong_dtypes_and_shapes_are_refused_over_grpc_and_v2(server) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        grpc_predict(server, {"ids": proto(IDS.astype(np.float32)), "x": proto(X)})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'ids'" in caught.value.details() and "int64 [N, 3]" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        grpc_predict(server, {"ids": proto(IDS), "x": proto(X[:, :3].copy())})
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'x'" in caught.value.details() and "float32 [N, 4]" in caught.value.details()
    for module, address in ((triton_http, server.rest_url.removeprefix("http://")), (triton_grpc, server.grpc_address)):
        with pytest.raises(InferenceServerException, match=r"'ids'.*expected INT64"):
            triton_scores(module, address, ids_datatype="FP32")
        client = module.InferenceServerClient(address)
        ids = module.InferInput("ids", [4, 2], "INT64")
        ids.set_data_from_numpy(IDS[:, :2].copy())
        x = module.InferInput("x", list(X.shape), "FP32")
        x.set_data_from_numpy(X)
        try:
            with pytest.raises(InferenceServerException, match=r"'ids' has shape \[4, 2\]: expected int64 \[N, 3\]"):
                client.infer(MODEL, [ids, x])
        finally:
            client.close()


def test_metadata_describes_the_signature_on_both_families(server) -> None:
    tfs = httpx.get(f"{server.rest_url}/v1/models/{MODEL}/metadata").json()["metadata"]["signature_def"]
    classify = tfs["signature_def"]["serving_default"]
    assert classify["outputs"]["classes"] == {
        "name": "class_names",
        "dtype": "DT_STRING",
        "tensor_shape": {"dim": [{"size": "-1"}, {"size": "3"}]},
    }
    assert classify["outputs"]["scores"]["name"] == "probabilities"
    assert tfs["signature_def"]["predict"]["inputs"]["ids"]["dtype"] == "DT_INT64"
    v2 = httpx.get(f"{server.rest_url}/v2/models/{MODEL}").json()
    assert v2["inputs"] == [
        {"name": "ids", "datatype": "INT64", "shape": [-1, 3]},
        {"name": "x", "datatype": "FP32", "shape": [-1, 4]},
    ]
    assert sorted(v2["outputs"], key=lambda o: o["name"]) == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "scores", "datatype": "FP32", "shape": [-1, 3]},
    ]


def test_a_signature_that_does_not_match_the_graph_is_refused_and_the_old_version_serves(
    server, pair_base: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="trainflow.serving.repository"):
        publish(pair_base, 2, pair_model_onnx(), pair_signature(ids_input="tokens"))
        deadline = time.monotonic() + 20
        while 2 not in server.repository.refused:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    refused = [r.getMessage() for r in caplog.records if "version 2 refused" in r.getMessage()]
    assert len(refused) == 1 and "'tokens'" in refused[0] and "still serving version 1" in refused[0], refused
    response = rest(server, "predict", {"signature_name": "predict", "inputs": {"ids": IDS.tolist(), "x": X.tolist()}})
    assert (
        response.status_code == 200
        and response.json()["outputs"]["label"] == np.argmax(pair_expected(IDS, X), axis=1).tolist()
    )


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda s: s.replace(
                '"shape": [\n            -1,\n            4\n',
                '"shape": [\n            -1,\n            1099511627776\n',
            ),
            ["1099511627776", "at most"],
        ),
        (lambda s: s.replace('"dtype": "int64"', '"dtype": "uint64"', 1), ["uint64"]),
        (lambda s: s.replace('"onnx_name": "probabilities"', '"onnx_name": "logits"', 1), ["'logits'"]),
    ],
)
def test_hostile_signatures_are_refused_at_load(tmp_path: Path, edit, words: list[str]) -> None:
    from trainflow.export.signature import ModelSignature
    from trainflow.serving.errors import ModelLoadError
    from trainflow.serving.runtime import OnnxModel

    (tmp_path / "model.onnx").write_bytes(pair_model_onnx())
    text = edit(pair_signature())
    assert text != pair_signature()
    with pytest.raises(ModelLoadError) as caught:
        OnnxModel("pair", 1, tmp_path, ModelSignature.from_json(text))
    assert all(word in caught.value.message for word in words), caught.value.message


@pytest.mark.parametrize("module", [triton_http, triton_grpc], ids=["v2-rest", "v2-grpc"])
def test_v2_classification_extension_answers_the_top_k_with_names(server, module) -> None:
    address = server.rest_url.removeprefix("http://") if module is triton_http else server.grpc_address
    client = module.InferenceServerClient(address)
    ids = module.InferInput("ids", list(IDS.shape), "INT64")
    ids.set_data_from_numpy(IDS)
    x = module.InferInput("x", list(X.shape), "FP32")
    x.set_data_from_numpy(X)
    try:
        top = client.infer(MODEL, [ids, x], outputs=[module.InferRequestedOutput("scores", class_count=2)])
        answer = top.as_numpy("scores")
        with pytest.raises(InferenceServerException, match="positive whole number"):
            client.infer(MODEL, [ids, x], outputs=[module.InferRequestedOutput("scores", class_count=-1)])
    finally:
        client.close()
    expected = pair_expected(IDS, X)
    assert answer.shape == (4, 2)
    for row, scores in zip(answer, expected, strict=True):
        order = np.argsort(-scores)[:2]
        parsed = [item.decode().split(":") for item in row]
        assert [(int(i), label) for _, i, label in parsed] == [(i, PAIR_CLASSES[i]) for i in order]
        np.testing.assert_allclose([float(s) for s, _, _ in parsed], scores[order], atol=1e-5)


def test_an_rgb_image_model_takes_arrays_and_colour_pngs_with_its_class_names(tmp_path: Path) -> None:
    import base64
    import io

    from model_files import colour_model_onnx
    from PIL import Image

    from trainflow.export.signature import image_classifier_signature

    signature = image_classifier_signature(3, class_names=["red", "green", "blue"], input_shape=(3, 4, 4))
    publish(tmp_path / "colour", 1, colour_model_onnx(), signature.to_json())
    red = np.zeros((3, 4, 4), np.float32)
    red[0] = 1.0
    png = io.BytesIO()
    Image.new("RGB", (9, 7), (0, 0, 255)).save(png, format="PNG")  # any size: resized to 4x4
    blue = {"b64": base64.b64encode(png.getvalue()).decode()}
    with running_server(tmp_path / "colour", model_name="colour") as server:
        url = f"{server.rest_url}/v1/models/colour:classify"
        response = httpx.post(url, json={"examples": [{"inputs": red.tolist()}, {"inputs": blue}]}, timeout=30)
        assert response.status_code == 200, response.text
        assert [row[0][0] for row in response.json()["result"]] == ["red", "blue"]
        flat = httpx.post(
            f"{server.rest_url}/v1/models/colour:predict",
            timeout=30,
            json={"signature_name": "predict_images", "instances": [red.ravel().tolist()]},
        )
        assert flat.json()["predictions"][0]["classes"] == 0
        gray = httpx.post(
            f"{server.rest_url}/v1/models/colour:predict",
            timeout=30,
            json={"signature_name": "predict_images", "instances": [red[0].tolist()]},
        )
        assert gray.status_code == 400 and "[N, 3, 4, 4]" in gray.json()["error"], gray.text
        metadata = httpx.get(f"{server.rest_url}/v2/models/colour", timeout=30).json()
        assert metadata["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 3, 4, 4]}]


def test_feature_vectors_and_raw_pixel_images_take_their_own_value_ranges(tmp_path: Path) -> None:
    import base64
    import io

    from model_files import colour_model_onnx, linear_classifier_onnx
    from PIL import Image

    from trainflow.export.signature import image_classifier_signature

    # a tabular model with 4 features (not a 2x2 image): any finite numbers
    weights = np.eye(4, 3, dtype=np.float32)
    tabular = image_classifier_signature(3, class_names=["a", "b", "c"], input_shape=(4,), image=False)
    publish(tmp_path / "tabular", 1, linear_classifier_onnx(weights, np.zeros(3)), tabular.to_json())
    # an RGB model whose graph takes raw pixels, 0 to 255
    raw = image_classifier_signature(
        3, class_names=["red", "green", "blue"], input_shape=(3, 4, 4), value_range=(0.0, 255.0)
    )
    publish(tmp_path / "raw", 1, colour_model_onnx(), raw.to_json())
    png = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 200, 0)).save(png, format="PNG")
    with running_server(tmp_path / "tabular", model_name="tabular") as server:
        url = f"{server.rest_url}/v1/models/tabular:classify"
        response = httpx.post(url, json={"examples": [{"inputs": [-3.5, 40.0, 2.0, 7.0]}]}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["result"][0][0][0] == "b"
        image = httpx.post(url, json={"examples": [{"inputs": {"b64": base64.b64encode(png.getvalue()).decode()}}]})
        assert image.status_code == 400 and "takes numbers" in image.json()["error"]
    with running_server(tmp_path / "raw", model_name="raw") as server:
        url = f"{server.rest_url}/v1/models/raw:classify"
        pixels = np.zeros((3, 4, 4))
        pixels[2] = 255.0
        answers = httpx.post(
            url,
            timeout=30,
            json={
                "examples": [
                    {"inputs": pixels.tolist()},
                    {"inputs": {"b64": base64.b64encode(png.getvalue()).decode()}},
                ]
            },
        )
        assert answers.status_code == 200, answers.text
        assert [row[0][0] for row in answers.json()["result"]] == ["blue", "green"]
        over = httpx.post(url, json={"examples": [{"inputs": (pixels + 1).tolist()}]}, timeout=30)
        assert over.status_code == 400 and "[0, 255]" in over.json()["error"], over.text
