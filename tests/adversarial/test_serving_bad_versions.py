"""Bad model versions (issue 10, defects 2 and 6): refusing one never touches the versions being served."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from live_server import running_server
from model_files import constant_classifier_onnx, nan_classifier_onnx, publish

IMAGE = [0.5] * 784


def predict_class(url: str, version: int | None = None) -> int:
    path = f"/v1/models/mnist/versions/{version}:predict" if version else "/v1/models/mnist:predict"
    response = httpx.post(url + path, json={"signature_name": "predict_images", "instances": [IMAGE]}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]["classes"]


def test_refusing_a_corrupt_version_keeps_pinned_older_versions_loaded(tmp_path: Path) -> None:
    base = tmp_path / "mnist"
    publish(base, 1, constant_classifier_onnx(1))
    publish(base, 2, constant_classifier_onnx(2))
    # polls are driven by hand below, so that the poll which refuses version 3 is the one observed
    with running_server(base, poll_seconds=3600, keep_versions=2) as server:
        assert sorted(server.repository.versions) == [1, 2]
        failures: list[str] = []
        stop = threading.Event()

        def pinned_clients() -> None:
            with httpx.Client(base_url=server.rest_url, timeout=10) as client:
                while not stop.is_set():
                    response = client.post(
                        "/v1/models/mnist/versions/1:predict",
                        json={"signature_name": "predict_images", "instances": [IMAGE]},
                    )
                    if response.status_code != 200:
                        failures.append(response.text)

        clients = threading.Thread(target=pinned_clients)
        clients.start()
        try:
            publish(base, 3, b"this is not an ONNX model")
            for _ in range(3):
                server.repository.poll_once()
                assert sorted(server.repository.versions) == [1, 2]
        finally:
            stop.set()
            clients.join()
        assert failures == []
        assert 3 in server.repository.refused
        assert predict_class(server.rest_url, 1) == 1 and predict_class(server.rest_url) == 2


def test_a_version_with_nan_outputs_is_refused_and_the_old_one_keeps_serving(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="trainflow.serving.repository")
    base = tmp_path / "mnist"
    publish(base, 1, constant_classifier_onnx(4))
    with running_server(base, poll_seconds=3600) as server:
        publish(base, 2, nan_classifier_onnx())
        server.repository.poll_once()
        assert sorted(server.repository.versions) == [1]
        assert predict_class(server.rest_url) == 4
    refused = [r.getMessage() for r in caplog.records if "version 2 refused" in r.getMessage()]
    assert refused and "not finite" in refused[0] and "still serving version 1" in refused[0]


def test_a_server_whose_only_version_has_nan_outputs_serves_nothing(tmp_path: Path) -> None:
    base = tmp_path / "mnist"
    publish(base, 1, nan_classifier_onnx())
    with running_server(base, poll_seconds=3600) as server:
        assert not server.repository.ready()
        ready = httpx.get(server.rest_url + "/v2/health/ready")
        assert ready.status_code == 503
        response = httpx.post(server.rest_url + "/v1/models/mnist:predict", json={"instances": [IMAGE]})
        assert response.status_code == 503 and "no version loaded" in response.json()["error"]


@pytest.mark.parametrize(
    "name", ["x; touch /tmp/pwned", "../mnist", "", "mnist:predict", "a" * 129, "mn ist", "ünïcode", "-leading-dash"]
)
def test_invalid_model_names_are_refused_at_start(tmp_path: Path, name: str) -> None:
    from trainflow.serving import ServingError
    from trainflow.serving.server import ServerConfig

    with pytest.raises(ServingError, match="model name .* is not valid"):
        ServerConfig(name, str(tmp_path))
