"""`trainflow serve --model-base-path models:/NAME@ALIAS` serves from a real MLflow registry and follows the alias."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.commands import wait_until
from tests.servers import free_port
from tests.serving.model_files import constant_classifier_onnx, publish
from tests.tracking.conftest import MlflowServer, run_trainflow

ROW = [0.0] * 784
SERVE = [sys.executable, "-m", "trainflow", "serve", "--model-name", "digits", "--grpc-port", "0", "--model-base-path"]


def register_constant_model(server: MlflowServer, name: str, answer: int, tmp_path: Path) -> int:
    """Export-shaped version (model.onnx + signature.json) always answering `answer`, registered through trainflow."""
    from trainflow.tracking.step_run import StepRun

    folder = tmp_path / f"answers-{answer}"
    publish(folder, 1, constant_classifier_onnx(answer))
    client = server.client()
    experiment = client.get_experiment_by_name("registry-tests") or client.get_experiment(
        client.create_experiment("registry-tests")
    )
    run = client.create_run(experiment.experiment_id)
    version = StepRun(server.uri, run.info.run_id).log_model(folder / "1", np.zeros((1, 784), np.float32), name)
    assert version is not None
    return int(version)


def answer_of(rest: str, http: Any = httpx) -> int:
    reply = http.post(
        f"{rest}/v1/models/digits:predict", json={"signature_name": "predict_images", "instances": [ROW]}, timeout=10
    )
    reply.raise_for_status()
    prediction = reply.json()["predictions"][0]
    classes = prediction["classes"] if isinstance(prediction, dict) else np.argmax(prediction)
    return int(np.ravel(classes)[0])


def served_versions(rest: str) -> list[str]:
    status = httpx.get(f"{rest}/v1/models/digits", timeout=5).json()["model_version_status"]
    return sorted(s["version"] for s in status if s["state"] == "AVAILABLE")


def test_serve_follows_the_alias_with_no_failed_request_under_load(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    name = "digits-follow"
    first = register_constant_model(mlflow_server, name, 3, tmp_path)
    second = register_constant_model(mlflow_server, name, 7, tmp_path)
    client = mlflow_server.client()
    client.set_registered_model_alias(name, "champion", str(first))
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.uri, "TRAINFLOW_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [*SERVE, f"models:/{name}@champion", "--rest-port", str(port), "--poll-seconds", "0.2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    rest = f"http://127.0.0.1:{port}"
    failures: list[str] = []
    answers: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                try:
                    answers.append(answer_of(rest, http))
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    try:
        wait_until(lambda: served_versions(rest) == [str(first)], 120, 0.1, alive=proc, tolerate=(httpx.HTTPError,))
        assert answer_of(rest) == 3
        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(1.0)
        client.set_registered_model_alias(name, "champion", str(second))
        moved = time.monotonic()
        wait_until(
            lambda: served_versions(rest) == [str(second)] and answer_of(rest) == 7,
            60,
            0.1,
            alive=proc,
            tolerate=(httpx.HTTPError,),
        )
        switch_seconds = time.monotonic() - moved
        time.sleep(3.0)  # the load goes on past the switch
        stop.set()
        for w in workers:
            w.join(30)
        assert failures == []
        assert 3 in answers and 7 in answers
        assert switch_seconds < 30
        client.set_registered_model_alias(name, "champion", str(first))  # a rollback swaps back as well
        wait_until(
            lambda: served_versions(rest) == [str(first)] and answer_of(rest) == 3,
            60,
            0.1,
            alive=proc,
            tolerate=(httpx.HTTPError,),
        )
        assert not (tmp_path / "mlflow.db").exists()  # mlflow's default local store, never made in the user's folder
    finally:
        stop.set()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_a_numbered_registry_version(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    name = "digits-numbered"
    version = register_constant_model(mlflow_server, name, 5, tmp_path)
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.uri, "TRAINFLOW_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [*SERVE, f"models:/{name}/{version}", "--rest-port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        rest = f"http://127.0.0.1:{port}"
        wait_until(lambda: served_versions(rest) == [str(version)], 120, 0.1, alive=proc, tolerate=(httpx.HTTPError,))
        assert answer_of(rest) == 5
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize(
    ("base", "says"),
    [
        ("models:/no-such-model@champion", "is not in the registry"),
        ("models:/digits-numbered@no-such-alias", "is not in the registry"),
        ("models:/digits-numbered/999", "is not in the registry"),
        ("models:/bad name!@x", "is not a registry URI"),
    ],
)
def test_an_unknown_model_alias_or_version_is_one_error_line_before_serving(
    mlflow_server: MlflowServer, tmp_path: Path, base: str, says: str
) -> None:
    out = run_trainflow(
        tmp_path,
        {"MLFLOW_TRACKING_URI": mlflow_server.uri},
        "serve",
        "--model-base-path",
        base,
        "--rest-port",
        "0",
        "--grpc-port",
        "0",
        timeout=120,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and says in out.stderr, out.stderr
