"""Model versions: newest served, hot swap without failed requests, broken versions refused, S3 bases."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
from model_files import constant_classifier_onnx, publish

from trainflow.export.signature import MODEL_FILE, image_classifier_signature
from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as v2
from trainflow.serving.protos.kserve import grpc_predict_v2_pb2_grpc as v2_grpc

IMAGE = [0.5] * 784


def rest_class(server, version: int | None = None) -> int:
    path = "/v1/models/mnist" + (f"/versions/{version}" if version else "") + ":predict"
    response = httpx.post(
        server.rest_url + path, json={"signature_name": "predict_images", "instances": [IMAGE]}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]["classes"]


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_new_version_is_swapped_in_under_load_without_a_failed_request(tmp_path: Path, start_server) -> None:
    base = tmp_path / "models"
    publish(base, 1, constant_classifier_onnx(3))
    with start_server(base) as server:
        stop = threading.Event()
        seen: list[int] = []
        per_client: list[list[int]] = [[], []]  # what each REST client saw, in its own order
        failures: list[str] = []

        def rest_loop(mine: list[int]) -> None:
            with httpx.Client(base_url=server.rest_url, timeout=10) as client:
                while not stop.is_set():
                    response = client.post(
                        "/v1/models/mnist:predict", json={"signature_name": "predict_images", "instances": [IMAGE]}
                    )
                    if response.status_code != 200:
                        failures.append(response.text)
                    else:
                        seen.append(response.json()["predictions"][0]["classes"])
                        mine.append(seen[-1])

        def grpc_loop() -> None:
            with grpc.insecure_channel(server.grpc_address) as channel:
                stub = v2_grpc.GRPCInferenceServiceStub(channel)
                while not stop.is_set():
                    request = v2.ModelInferRequest(model_name="mnist")
                    request.inputs.add(name="images", datatype="FP32", shape=[1, 784])
                    request.raw_input_contents.append(np.full(784, 0.5, np.float32).tobytes())
                    try:
                        stub.ModelInfer(request, timeout=10)
                    except grpc.RpcError as exc:
                        failures.append(str(exc))

        threads = [threading.Thread(target=rest_loop, args=(mine,)) for mine in per_client]
        threads.append(threading.Thread(target=grpc_loop))
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: len(seen) > 20)
            publish(base, 2, constant_classifier_onnx(7))
            wait_for(lambda: 7 in seen[-5:])
            time.sleep(0.3)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert failures == []
        assert seen[0] == 3 and seen[-1] == 7
        # A request already running on version 1 may answer after another client's first 7, but no
        # client gets the old version back once it has seen the new one.
        for answers in per_client:
            first_new = answers.index(7) if 7 in answers else len(answers)
            assert set(answers[first_new:]) <= {7}, answers


def test_broken_new_version_is_refused_and_old_one_keeps_serving(tmp_path: Path, start_server, caplog) -> None:
    base = tmp_path / "models"
    publish(base, 1, constant_classifier_onnx(3))
    caplog.set_level(logging.ERROR, logger="trainflow.serving.repository")
    with start_server(base) as server:
        publish(base, 2, b"this is not an onnx model")
        wait_for(lambda: any("version 2 refused" in r.getMessage() for r in caplog.records))
        assert rest_class(server) == 3
        assert httpx.get(server.rest_url + "/v2/health/ready").json() == {"ready": True}
        publish(base, 3, constant_classifier_onnx(5), signature=image_classifier_signature(num_classes=4).to_json())
        wait_for(lambda: any("version 3 refused" in r.getMessage() for r in caplog.records))
        assert rest_class(server) == 3
        publish(base, 4, constant_classifier_onnx(8))
        wait_for(lambda: rest_class(server) == 8)
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 2 and "still serving version 1" in refused[0]  # logged once each, not every poll


def test_specific_versions_can_be_requested_on_every_protocol(tmp_path: Path, start_server) -> None:
    import tritonclient.grpc as triton_grpc

    base = tmp_path / "models"
    publish(base, 1, constant_classifier_onnx(3))
    publish(base, 2, constant_classifier_onnx(7))
    with start_server(base) as server:
        assert rest_class(server) == 7
        assert rest_class(server, version=1) == 3
        assert httpx.get(server.rest_url + "/v2/models/mnist").json()["versions"] == ["1", "2"]
        client = triton_grpc.InferenceServerClient(server.grpc_address)
        infer_input = triton_grpc.InferInput("images", [1, 784], "FP32")
        infer_input.set_data_from_numpy(np.full((1, 784), 0.5, np.float32))
        assert client.infer("mnist", [infer_input], model_version="1").as_numpy("classes").tolist() == [3]
        assert client.infer("mnist", [infer_input]).as_numpy("classes").tolist() == [7]
        client.close()


def test_server_waits_for_a_first_version_and_ignores_incomplete_ones(tmp_path: Path, start_server) -> None:
    base = tmp_path / "models"
    with start_server(base) as server:
        assert httpx.get(server.rest_url + "/v2/health/live").json() == {"live": True}
        not_ready = httpx.get(server.rest_url + "/v2/health/ready")
        assert (not_ready.status_code, not_ready.json()) == (503, {"ready": False})
        busy = httpx.post(server.rest_url + "/v1/models/mnist:predict", json={"instances": [IMAGE]})
        assert busy.status_code == 503 and "no version loaded" in busy.json()["error"]
        incomplete = base / "5"
        incomplete.mkdir(parents=True)
        (incomplete / MODEL_FILE).write_bytes(constant_classifier_onnx(1))  # no signature.json yet
        (base / "latest").mkdir()
        publish(base, 2, constant_classifier_onnx(6))
        assert server.wait_ready(timeout=15)
        assert rest_class(server) == 6
        time.sleep(0.3)
        assert rest_class(server) == 6


def test_removed_version_is_unloaded_and_the_previous_one_served(tmp_path: Path, start_server) -> None:
    base = tmp_path / "models"
    publish(base, 1, constant_classifier_onnx(3))
    publish(base, 2, constant_classifier_onnx(7))
    with start_server(base) as server:
        assert rest_class(server) == 7
        shutil.rmtree(base / "2")
        wait_for(lambda: rest_class(server) == 3)
        assert (
            httpx.post(server.rest_url + "/v1/models/mnist/versions/2:predict", json={"instances": [IMAGE]}).status_code
            == 404
        )


def test_serves_versions_from_s3_and_picks_up_new_ones(s3_bucket: str, tmp_path: Path, start_server) -> None:
    from trainflow.export import publish_version

    signature = image_classifier_signature().to_json()
    base = f"{s3_bucket}/exported/myjob"
    publish_version(base, constant_classifier_onnx(2), signature)
    with start_server(base) as server:
        assert rest_class(server) == 2
        publish_version(base, constant_classifier_onnx(9), signature)
        wait_for(lambda: rest_class(server) == 9)
        assert httpx.get(server.rest_url + "/v2/models/mnist").json()["versions"] == ["1", "2"]


def test_metrics_count_the_versions_loaded_as_they_come_and_go(tmp_path: Path, start_server) -> None:
    base = tmp_path / "models"
    publish(base, 1, constant_classifier_onnx(3))

    def loaded(server) -> str:
        text = httpx.get(f"{server.rest_url}/metrics", timeout=10).text
        return next(line for line in text.splitlines() if line.startswith("trainflow_model_versions_loaded{"))

    with start_server(base) as server:
        assert loaded(server) == 'trainflow_model_versions_loaded{model="mnist"} 1.0'
        publish(base, 2, constant_classifier_onnx(7))
        wait_for(lambda: rest_class(server) == 7)
        assert loaded(server) == 'trainflow_model_versions_loaded{model="mnist"} 2.0'
        shutil.rmtree(base / "2")
        wait_for(lambda: rest_class(server) == 3)
        assert loaded(server) == 'trainflow_model_versions_loaded{model="mnist"} 1.0'
