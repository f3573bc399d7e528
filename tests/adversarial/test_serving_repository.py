"""Issue 22, items 5 and 12: a version too large to probe, refusals remembered, and listing only the top level."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from live_server import running_server
from model_files import constant_classifier_onnx, publish, wide_model_onnx, wide_signature
from servers import free_port

from trainflow.export.signature import MODEL_FILE, SIGNATURE_FILE, image_classifier_signature
from trainflow.serving import ServingError
from trainflow.serving.repository import check_base_path
from trainflow.serving.tensor_specs import MAX_EXAMPLE_VALUES
from trainflow.storage import open_store

IMAGE = [0.5] * 784
REPOSITORY_LOG = "trainflow.serving.repository"


def served_class(url: str) -> int:
    response = httpx.post(
        url + "/v1/models/mnist:predict", json={"signature_name": "predict_images", "instances": [IMAGE]}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]["classes"]


def publish_wide(base: Path, version: int) -> None:
    """A version with 8 inputs, each at the per-input limit: probing it would take ~2 GB."""
    publish(base, version, wide_model_onnx(8, MAX_EXAMPLE_VALUES), wide_signature(8, MAX_EXAMPLE_VALUES))


def refusals(caplog: pytest.LogCaptureFixture, version: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if f"version {version} refused" in r.getMessage()]


def test_a_version_whose_inputs_together_are_too_large_to_probe_is_refused_and_version_1_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REPOSITORY_LOG)
    base = tmp_path / "mnist"
    publish(base, 1, constant_classifier_onnx(1))
    publish_wide(base, 2)
    with running_server(base, poll_seconds=3600) as server:
        for _ in range(3):
            server.repository.poll_once()
        assert sorted(server.repository.versions) == [1]
        assert served_class(server.rest_url) == 1
    refused = refusals(caplog, 2)
    assert len(refused) == 1, refused
    assert "all inputs together" in refused[0]


def test_a_version_too_large_to_probe_hot_swapped_in_is_refused_once_over_many_polls(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REPOSITORY_LOG)
    base = tmp_path / "mnist"
    publish(base, 1, constant_classifier_onnx(1))
    with running_server(base, poll_seconds=0.05) as server:
        publish_wide(base, 2)
        deadline = time.monotonic() + 30
        while 2 not in server.repository.refused:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # ~20 more polls
        assert sorted(server.repository.versions) == [1] and served_class(server.rest_url) == 1
    assert len(refusals(caplog, 2)) == 1


def test_a_refused_version_is_tried_again_once_its_files_change(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger=REPOSITORY_LOG)
    base = tmp_path / "mnist"
    publish(base, 1, constant_classifier_onnx(1))
    publish(base, 2, b"not an ONNX model yet")
    with running_server(base, poll_seconds=3600) as server:
        server.repository.poll_once()
        assert sorted(server.repository.versions) == [1] and 2 in server.repository.refused
        (base / "2" / MODEL_FILE).write_bytes(constant_classifier_onnx(2))
        server.repository.poll_once()
        assert sorted(server.repository.versions) == [1, 2] and 2 not in server.repository.refused
        assert served_class(server.rest_url) == 2
    assert len(refusals(caplog, 2)) == 1


def test_the_server_lists_only_the_top_level_of_an_s3_base_and_the_chosen_version(s3_bucket: str) -> None:
    base = f"{s3_bucket}/models/mnist"
    store = open_store(base)
    store.publish(
        "1",
        {MODEL_FILE: constant_classifier_onnx(3), SIGNATURE_FILE: image_classifier_signature().to_json().encode()},
        SIGNATURE_FILE,
    )
    for i in range(300):  # unrelated objects beside the versions, under a folder that is no version
        store.write_bytes(f"tensorboard/run/events.{i:04d}", b"x")
    listed: list[int] = []

    def count(parsed: dict, **_: object) -> None:
        listed.append(len(parsed.get("Contents", [])) + len(parsed.get("CommonPrefixes", [])))

    store.client.meta.events.register("after-call.s3.ListObjectsV2", count)  # the client the server shares
    try:
        check_base_path(base)
        with running_server(base, poll_seconds=3600) as server:
            server.repository.poll_once()
            assert served_class(server.rest_url) == 3
    finally:
        store.client.meta.events.unregister("after-call.s3.ListObjectsV2", count)
    assert listed and sum(listed) < 20, listed


def unreadable_directory(tmp_path: Path) -> Path:
    """A directory whose entries this process cannot list (root reads any mode: then /proc/1/cwd if it is so)."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    for candidate in (locked, Path("/proc/1/cwd")):
        try:
            os.listdir(candidate)
        except PermissionError:
            return candidate
    pytest.skip("this process can list every directory it could make unreadable")


def test_a_base_path_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    base = unreadable_directory(tmp_path)
    with pytest.raises(ServingError) as refused:
        check_base_path(str(base))
    assert "cannot read the model directory" in refused.value.message and "\n" not in refused.value.message


def test_serve_on_the_root_directory_starts_and_waits_for_a_version() -> None:
    port = free_port()
    command = [sys.executable, "-m", "trainflow", "serve", "--model-base-path", "/"]
    proc = subprocess.Popen(
        [*command, "--rest-port", str(port), "--grpc-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready.status_code == 503  # up, serving nothing: no numbered version directly under /
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        output = proc.stdout.read() if proc.stdout else ""
        assert "Traceback" not in output and "waiting for a first version under /" in output, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
