"""The dashboard's JSON API over real HTTP: the same data as `trainflow get -o json`, clear errors."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.ui.conftest import BROKEN, IRIS, TRAIN_STEPS, WORKFLOW, Dashboard

EXTRA_KEYS = {"dag", "links", "model", "serves_model", "duration", "now"}


def png_data_url(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_workflow_api_is_what_trainflow_get_prints_plus_dag_and_links(finished: Dashboard) -> None:
    view = finished.workflow()
    printed = json.loads(finished.trainflow("get", WORKFLOW, "-o", "json").stdout)
    assert {k: v for k, v in view.items() if k not in EXTRA_KEYS} == printed
    listed = {w["name"]: w for w in httpx.get(f"{finished.url}/api/workflows", timeout=30).json()}
    # the browser tests may have added a live run to the same dashboard
    assert listed[WORKFLOW] == printed and {WORKFLOW, BROKEN} <= set(listed)

    nodes = {n["name"]: n for n in view["dag"]["nodes"]}
    assert len(nodes) == 6 and all(n["status"] == "Succeeded" for n in nodes.values())
    assert ["train-model", "export-model"] in view["dag"]["edges"] and nodes["serve-model"]["level"] == 3
    labels = {link["label"]: link["value"] for link in view["links"]}
    serve = next(s for s in printed["steps"] if s["name"] == "serve-model")["outputs"]
    assert labels["serve-model rest-url"] == serve["rest-url"] and labels["tensorboard url"].startswith(
        "http://127.0.0.1:"
    )
    assert view["model"]["name"] == "mnist" and view["serves_model"] is True


def test_curves_follow_the_training_to_its_last_step(finished: Dashboard) -> None:
    curves = httpx.get(f"{finished.url}/api/workflows/{WORKFLOW}/curves", timeout=30).json()
    loss = curves["series"]["train/loss"]
    assert curves["step"] == TRAIN_STEPS and curves["total_steps"] == TRAIN_STEPS
    assert loss[-1][0] == TRAIN_STEPS and loss[-1][1] < loss[0][1]  # it learned
    assert "events" in curves["sources"] and 0.5 < curves["final"]["accuracy"] <= 1.0


def test_step_logs_are_served_per_step(finished: Dashboard) -> None:
    log = httpx.get(f"{finished.url}/api/workflows/{WORKFLOW}/logs", params={"step": "train-model"}, timeout=30).json()
    assert any(f"step={TRAIN_STEPS}/{TRAIN_STEPS}" in line for line in log["lines"])
    assert not any(line.startswith("train-model: ") for line in log["lines"])


def test_a_digit_from_the_test_set_is_classified_through_the_dashboard(finished: Dashboard, mnist_dir: Path) -> None:
    from trainflow.datasets import load_split

    test = load_split(mnist_dir, "test")
    images = [(test.images[i].reshape(-1) / 255.0).tolist() for i in range(20)]
    answers = [
        httpx.post(f"{finished.url}/api/workflows/{WORKFLOW}/predict", json={"instances": [image]}, timeout=30).json()
        for image in images
    ]
    right = sum(a["class"] == int(label) for a, label in zip(answers, test.labels[:20]))
    assert right >= 15, answers[0]
    assert len(answers[0]["scores"]) == 10 and abs(sum(answers[0]["scores"]) - 1) < 1e-3

    # the same digit as a PNG, off-centre and large, as a canvas sends it
    canvas = np.zeros((280, 280), dtype=np.uint8)
    canvas[20:160, 120:260] = np.asarray(Image.fromarray(test.images[0]).resize((140, 140)))
    answer = httpx.post(
        f"{finished.url}/api/workflows/{WORKFLOW}/predict", json={"image": png_data_url(canvas)}, timeout=30
    ).json()
    assert answer["class"] == answers[0]["class"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "not JSON"),
        (json.dumps({"instances": [[0.5] * 10]}).encode(), "shape [1, 10]"),
        (json.dumps({"instances": [[2.0] * 784]}).encode(), "between 0 and 1"),
        (json.dumps({"image": "data:image/png;base64,@@@"}).encode(), "base64"),
        (
            json.dumps({"image": "data:image/png;base64," + base64.b64encode(b"GIF89a....").decode()}).encode(),
            "could not be read",
        ),
        (json.dumps({"pixels": []}).encode(), '"image"'),
    ],
)
def test_bad_predict_input_is_a_400_with_a_one_line_reason(finished: Dashboard, body: bytes, says: str) -> None:
    response = httpx.post(f"{finished.url}/api/workflows/{WORKFLOW}/predict", content=body, timeout=30)
    assert response.status_code == 400
    assert says in response.json()["error"] and "\n" not in response.json()["error"]


def test_an_empty_canvas_asks_for_a_digit(finished: Dashboard) -> None:
    blank = png_data_url(np.zeros((280, 280), dtype=np.uint8))
    response = httpx.post(f"{finished.url}/api/workflows/{WORKFLOW}/predict", json={"image": blank}, timeout=30)
    assert response.status_code == 400 and "draw a digit" in response.json()["error"]


def test_unknown_workflows_and_steps_are_clear_errors(finished: Dashboard) -> None:
    for path in ("/api/workflows/nope", "/api/workflows/nope/curves", "/api/workflows/nope/logs?step=train-model"):
        response = httpx.get(finished.url + path, timeout=30)
        assert response.status_code == 404 and "nope" in response.json()["error"], path
    response = httpx.post(f"{finished.url}/api/workflows/nope/predict", json={"instances": [[0.0] * 784]}, timeout=30)
    assert response.status_code == 404
    response = httpx.get(f"{finished.url}/api/workflows/{WORKFLOW}/logs", params={"step": "train"}, timeout=30)
    assert response.status_code == 400 and "train-model" in response.json()["error"]
    assert httpx.get(f"{finished.url}/api/nothing", timeout=30).status_code == 404


def test_a_workflow_that_serves_no_model_answers_503(finished: Dashboard) -> None:
    response = httpx.post(
        f"{finished.url}/api/workflows/{BROKEN}/predict", json={"instances": [[0.0] * 784]}, timeout=30
    )
    assert response.status_code == 503 and "serves no model" in response.json()["error"]
    view = finished.workflow(BROKEN)
    states = {n["name"]: n["status"] for n in view["dag"]["nodes"]}
    assert states["download-dataset"] == "Failed" and states["serve-model"] == "Omitted"
    assert "download-dataset failed" in view["message"]


def test_a_model_server_that_went_away_is_reported_unavailable() -> None:
    from trainflow.ui.errors import ModelUnavailable
    from trainflow.ui.predict import predict_digit
    from trainflow.workflows.backend import StepInfo, WorkflowInfo

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    info = WorkflowInfo(
        "gone",
        "model-train",
        "Succeeded",
        {"model-name": "mnist"},
        0.0,
        steps=[
            StepInfo(
                "serve-model",
                "Succeeded",
                provides={
                    "serves": "model",
                    "ports": {"rest": "rest", "grpc": "grpc"},
                    "model_name": "{{params.model-name}}",
                },
                addresses={"rest": dead.removeprefix("http://")},
            )
        ],
    )
    with pytest.raises(ModelUnavailable, match="is not answering"):
        predict_digit(info, np.zeros(784, dtype=np.float32))


def test_ui_refuses_a_port_in_use_with_one_line(finished: Dashboard) -> None:
    port = int(finished.url.rsplit(":", 1)[1])
    result = subprocess.run(
        [sys.executable, "-m", "trainflow", "ui", "--port", str(port)],
        capture_output=True,
        text=True,
        env=finished.env,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}")


def test_a_tabular_model_takes_a_form_of_features_and_answers_class_names(iris: Dashboard) -> None:
    from trainflow.datasets import load_dataset

    model = httpx.get(f"{iris.url}/api/workflows/{IRIS}/model-input", timeout=30).json()
    assert model == {"kind": "table", "input_shape": [4], "class_names": ["setosa", "versicolor", "virginica"]}
    assert httpx.get(f"{iris.url}/api/workflows/{WORKFLOW}/model-input", timeout=30).json()["kind"] == "digit"
    path = next(s for s in iris.workflow(IRIS)["steps"] if s["name"] == "download-dataset")["outputs"]["dataset-path"]
    test = load_dataset(Path(path)).test
    answers = [
        httpx.post(
            f"{iris.url}/api/workflows/{IRIS}/predict", json={"features": test.images[i].tolist()}, timeout=30
        ).json()
        for i in range(len(test))
    ]
    right = sum(a["class"] == int(label) for a, label in zip(answers, test.labels, strict=True))
    assert right >= 0.8 * len(test), answers[0]
    assert answers[0]["class_names"] == model["class_names"] and "input" not in answers[0]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"features": [1.0, 2.0]}, '"features" must be a list of 4 numbers'),
        ({"features": [1.0, 2.0, "x", None]}, "4 finite numbers"),
        ({"image": "data:image/png;base64,AAAA"}, "takes 4 feature values"),
        ({"pixels": []}, '"features"'),
    ],
)
def test_bad_features_are_a_400_with_a_one_line_reason(iris: Dashboard, body: dict, says: str) -> None:
    response = httpx.post(f"{iris.url}/api/workflows/{IRIS}/predict", json=body, timeout=30)
    assert response.status_code == 400 and says in response.json()["error"], response.text


def test_compared_runs_come_with_their_curves_and_what_trainflow_compare_prints(finished: Dashboard) -> None:
    response = httpx.get(f"{finished.url}/api/compare", params=[("run", WORKFLOW), ("run", BROKEN)], timeout=60)
    assert response.status_code == 200, response.text
    compared = response.json()
    trained, broken = compared["runs"]
    loss = trained["series"]["train/loss"]
    assert trained["name"] == WORKFLOW and loss[-1][0] == TRAIN_STEPS and loss[-1][1] < loss[0][1]
    assert trained["total_steps"] == TRAIN_STEPS and broken["name"] == BROKEN and broken["series"] == {}
    printed = json.loads(finished.trainflow("compare", WORKFLOW, BROKEN, "-o", "json").stdout)
    for run in (trained, broken):
        assert {k: v for k, v in run.items() if k not in ("series", "total_steps")} == printed[run["name"]]
    rows = {row["label"]: row for row in compared["rows"]}
    assert rows["status"] == {"label": "status", "values": ["Succeeded", "Failed"], "differs": True}
    assert rows["-p s3-data-url"]["differs"] and rows["accuracy"]["values"][1] is None


def test_compare_needs_two_to_eight_known_runs(finished: Dashboard) -> None:
    def compare(*names: str) -> httpx.Response:
        return httpx.get(f"{finished.url}/api/compare", params=[("run", n) for n in names], timeout=60)

    for names in ((WORKFLOW,), (WORKFLOW, WORKFLOW), ()):
        response = compare(*names)
        assert response.status_code == 400 and "two or more runs" in response.json()["error"], names
    response = compare(*(f"run-{i}" for i in range(9)))
    assert response.status_code == 400 and "at most 8 runs" in response.json()["error"]
    response = compare(WORKFLOW, "nope")
    assert response.status_code == 404 and "nope" in response.json()["error"]
