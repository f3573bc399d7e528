"""Every protocol answers the same classes for the same images, with independent clients."""

from __future__ import annotations

import base64
import io

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from PIL import Image
from tritonclient.utils import InferenceServerException

from trainflow.serving.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from trainflow.serving.protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

N = 200


def tfs_rest_classes(server, images: np.ndarray) -> np.ndarray:
    body = {"signature_name": "predict_images", "instances": images.reshape(len(images), -1).tolist()}
    response = httpx.post(f"{server.rest_url}/v1/models/mnist:predict", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return np.array([p["classes"] for p in response.json()["predictions"]])


def float_tensor(images: np.ndarray, content: bool) -> tensor_pb2.TensorProto:
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in images.shape]
        ),
    )
    if content:
        tensor.tensor_content = images.astype(np.float32).tobytes()
    else:
        tensor.float_val.extend(images.ravel().tolist())
    return tensor


def tfs_grpc_predict(server, images: np.ndarray, content: bool = True, signature: str = "predict_images"):
    with grpc.insecure_channel(server.grpc_address) as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mnist"
        request.model_spec.signature_name = signature
        request.inputs["images" if signature == "predict_images" else "inputs"].CopyFrom(float_tensor(images, content))
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)


def triton_classes(module, address: str, images: np.ndarray, binary: bool) -> np.ndarray:
    client = module.InferenceServerClient(address)
    data = images.reshape(len(images), -1).astype(np.float32)
    infer_input = module.InferInput("images", list(data.shape), "FP32")
    if module is triton_http:
        infer_input.set_data_from_numpy(data, binary_data=binary)
        outputs = [module.InferRequestedOutput("classes", binary_data=binary)]
    else:
        infer_input.set_data_from_numpy(data)
        outputs = [module.InferRequestedOutput("classes")]
    result = client.infer("mnist", [infer_input], outputs=outputs)
    client.close()
    return result.as_numpy("classes")


def test_all_four_protocols_agree_and_classify_mnist(server, test_set) -> None:
    images, labels = test_set
    answers = {
        "tfs-rest": tfs_rest_classes(server, images),
        "tfs-grpc": np.array(tfs_grpc_predict(server, images.reshape(N, -1)).outputs["classes"].int64_val),
        "v2-rest": triton_classes(triton_http, server.rest_url.removeprefix("http://"), images, binary=True),
        "v2-rest-json": triton_classes(triton_http, server.rest_url.removeprefix("http://"), images, binary=False),
        "v2-grpc": triton_classes(triton_grpc, server.grpc_address, images, binary=True),
    }
    for protocol, classes in answers.items():
        assert classes.shape == (N,), protocol
        np.testing.assert_array_equal(classes, answers["tfs-rest"], err_msg=protocol)
    assert (answers["tfs-rest"] == labels).mean() >= 0.8  # the nearest-class-mean test model


def test_tfs_rest_columnar_format_and_image_shapes(server, test_set) -> None:
    images, _ = test_set
    expected = tfs_rest_classes(server, images[:5])
    for shaped in (images[:5], images[:5].reshape(5, 1, 28, 28), images[:5].reshape(5, 784)):
        body = {"signature_name": "predict_images", "inputs": {"images": shaped.tolist()}}
        response = httpx.post(f"{server.rest_url}/v1/models/mnist:predict", json=body)
        assert response.status_code == 200, response.text
        outputs = response.json()["outputs"]
        assert outputs["classes"] == expected.tolist()
        assert np.allclose(np.array(outputs["scores"]).sum(axis=1), 1.0, atol=1e-4)


def test_tfs_rest_default_signature_is_serving_default(server, test_set) -> None:
    images, _ = test_set
    response = httpx.post(f"{server.rest_url}/v1/models/mnist:predict", json={"instances": images[:2].tolist()})
    assert response.status_code == 200, response.text
    first = response.json()["predictions"][0]
    assert first["classes"] == [str(i) for i in range(10)]  # predict: tensors in label order, like the scores
    assert len(first["scores"]) == 10


def png_b64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray((image * 255).round().astype(np.uint8), mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_tfs_rest_accepts_b64_png_images(server, test_set) -> None:
    images, _ = test_set
    expected = tfs_rest_classes(server, images[:4])
    body = {"signature_name": "predict_images", "instances": [{"b64": png_b64(i)} for i in images[:4]]}
    response = httpx.post(f"{server.rest_url}/v1/models/mnist:predict", json=body)
    assert response.status_code == 200, response.text
    assert [p["classes"] for p in response.json()["predictions"]] == expected.tolist()
    named = {"signature_name": "predict_images", "instances": [{"images": {"b64": png_b64(images[0])}}]}
    assert (
        httpx.post(f"{server.rest_url}/v1/models/mnist:predict", json=named).json()["predictions"][0]["classes"]
        == expected[0]
    )


def test_tfs_rest_classify_returns_label_score_pairs_sorted_by_score(server, test_set) -> None:
    images, _ = test_set
    expected = tfs_rest_classes(server, images[:3])
    body = {"examples": [{"inputs": image.ravel().tolist()} for image in images[:3]]}
    response = httpx.post(f"{server.rest_url}/v1/models/mnist:classify", json=body)
    assert response.status_code == 200, response.text
    for pairs, cls in zip(response.json()["result"], expected, strict=True):
        assert sorted(label for label, _ in pairs) == [str(i) for i in range(10)]
        assert [score for _, score in pairs] == sorted((score for _, score in pairs), reverse=True)
        assert pairs[0][0] == str(cls)  # the top class first, as TF Serving's classify and a top-k client expect


def test_tfs_rest_status_and_metadata(server) -> None:
    status = httpx.get(f"{server.rest_url}/v1/models/mnist").json()
    assert status == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert httpx.get(f"{server.rest_url}/v1/models/mnist/versions/1").status_code == 200
    metadata = httpx.get(f"{server.rest_url}/v1/models/mnist/metadata").json()
    assert metadata["model_spec"]["version"] == "1"
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert signatures["predict_images"]["inputs"]["images"]["dtype"] == "DT_FLOAT"
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/classify"
    classes = signatures["serving_default"]["outputs"]["classes"]  # the class names, not the scores tensor
    assert classes["name"] == "class_names" and classes["dtype"] == "DT_STRING"
    assert signatures["serving_default"]["outputs"]["scores"]["name"] == "scores"


def test_tfs_grpc_predict_with_float_val_and_tensor_content(server, test_set) -> None:
    images = test_set[0][:8].reshape(8, -1)
    by_content = tfs_grpc_predict(server, images, content=True)
    by_values = tfs_grpc_predict(server, images, content=False)
    assert list(by_content.outputs["classes"].int64_val) == list(by_values.outputs["classes"].int64_val)
    assert len(by_values.outputs["scores"].float_val) == 80
    assert by_content.model_spec.version.value == 1
    classify = tfs_grpc_predict(server, images, signature="serving_default")
    assert list(classify.outputs["classes"].string_val[:10]) == [str(i).encode() for i in range(10)]


def test_tfs_grpc_metadata_and_status(server) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "mnist"
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        assert set(signatures.signature_def) == {"predict_images", "serving_default"}
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "mnist"
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request)
        assert [(s.version, s.state) for s in status.model_version_status] == [
            (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        ]


def test_v2_health_metadata_and_unimplemented_calls(server) -> None:
    rest = triton_http.InferenceServerClient(server.rest_url.removeprefix("http://"))
    assert rest.is_server_live() and rest.is_server_ready() and rest.is_model_ready("mnist")
    assert rest.get_model_metadata("mnist")["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 784]}]
    assert rest.get_server_metadata()["name"] == "trainflow"
    assert httpx.get(f"{server.rest_url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server.rest_url}/v2/health/ready").json() == {"ready": True}
    client = triton_grpc.InferenceServerClient(server.grpc_address)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mnist", "1")
    metadata = client.get_model_metadata("mnist", as_json=True)
    assert metadata["platform"] == "onnxruntime_onnx" and metadata["versions"] == ["1"]
    assert {o["name"]: o["datatype"] for o in metadata["outputs"]} == {"scores": "FP32", "classes": "INT64"}
    with pytest.raises(InferenceServerException, match="(?i)unimplemented"):
        client.get_model_repository_index()
    client.close()


def test_metrics_count_requests_and_latency_per_protocol(server, test_set) -> None:
    images, _ = test_set
    tfs_rest_classes(server, images[:2])
    tfs_grpc_predict(server, images[:2].reshape(2, -1))
    httpx.post(f"{server.rest_url}/v1/models/mnist:predict", json={"instances": [[0.5]]})
    text = httpx.get(f"{server.rest_url}/metrics").text
    assert 'trainflow_request_duration_seconds_count{model="mnist",protocol="tfs-rest",version="1"} 1.0' in text
    assert 'trainflow_request_duration_seconds_count{model="mnist",protocol="tfs-grpc",version="1"} 1.0' in text
    assert 'trainflow_request_errors_total{error="InvalidInput",model="mnist",protocol="tfs-rest"} 1.0' in text
    assert 'trainflow_model_versions_loaded{model="mnist"} 1.0' in text


def test_tfs_grpc_classify_takes_pixels_or_png_and_answers_sorted_classes(server, test_set) -> None:
    from trainflow.serving.protos.tensorflow.core.example import example_pb2, feature_pb2
    from trainflow.serving.protos.tensorflow_serving.apis import classification_pb2, input_pb2

    images, _ = test_set
    expected = tfs_rest_classes(server, images[:3])
    pixels = [feature_pb2.Feature(float_list=feature_pb2.FloatList(value=i.ravel().tolist())) for i in images[:3]]
    encoded = [
        feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[base64.b64decode(png_b64(i))])) for i in images[:3]
    ]
    for features in (pixels, encoded):
        request = classification_pb2.ClassificationRequest(
            input=input_pb2.Input(
                example_list=input_pb2.ExampleList(
                    examples=[
                        example_pb2.Example(features=feature_pb2.Features(feature={"inputs": f})) for f in features
                    ]
                )
            )
        )
        request.model_spec.name = "mnist"
        with grpc.insecure_channel(server.grpc_address) as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Classify(request, timeout=30)
        top = [int(c.classes[0].label) for c in response.result.classifications]
        assert top == expected.tolist()
        scores = [s.score for s in response.result.classifications[0].classes]
        assert scores == sorted(scores, reverse=True) and len(scores) == 10
