"""`trainflow ui --backend kubernetes`: the dashboard's API over a cluster's workflows (the API is a fake)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from servers import free_port

from tests.workflows.kubernetes.fake_cluster import FakeCluster
from trainflow.ui import create_app
from trainflow.workflows import MODEL_TRAIN
from trainflow.workflows.kubernetes import KubernetesBackend


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Starts the dashboard app for a backend on a real loopback port; stopped after the test."""
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(backend: Any) -> httpx.Client:
        port = free_port()
        app = create_app(backend, tmp_path / f"cache-{port}", frozenset({"127.0.0.1"}))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def dashboard(serve: Any) -> httpx.Client:
    cluster = FakeCluster()
    target = KubernetesBackend(namespace="ml", api=cluster.api())
    target.submit(MODEL_TRAIN, {"job-name": "run1"})
    cluster.workflows[("ml", "run1")]["status"] = {
        "phase": "Running",
        "startedAt": "2026-01-01T00:00:05Z",
        "nodes": {"n1": {"displayName": "download-dataset", "phase": "Succeeded", "type": "Pod"}},
    }
    argo = {"workflows.argoproj.io/workflow": "run1"}
    cluster.add_pod(
        "ml", "run1-dl", argo, "main", "fetched 10000 examples\ncached\n", node_name="run1.download-dataset"
    )
    return serve(target)


def test_dashboard_lists_and_shows_a_clusters_workflows_fake_k8s_api(dashboard: httpx.Client) -> None:
    [listed] = dashboard.get("/api/workflows").json()
    assert listed["name"] == "run1" and listed["status"] == "Running"
    view = dashboard.get("/api/workflows/run1").json()
    nodes = {n["name"]: n["status"] for n in view["dag"]["nodes"]}
    assert nodes["download-dataset"] == "Succeeded" and nodes["train-model"] == "Pending"
    log = dashboard.get("/api/workflows/run1/logs", params={"step": "download-dataset"}).json()
    assert log["lines"] == ["fetched 10000 examples", "cached"]
    assert dashboard.get("/api/workflows/nope").status_code == 404


def test_dashboard_says_what_a_cluster_does_not_offer_fake_k8s_api(dashboard: httpx.Client) -> None:
    backend = dashboard.get("/api/backend").json()
    assert backend["name"] == "kubernetes" and backend["namespace"] == "ml"
    assert any(line.startswith("Try the model is not available") for line in backend["limits"])
    refused = dashboard.post("/api/workflows/run1/predict", json={"image": "data:image/png;base64,"})
    assert refused.status_code == 503
    assert "trainflow predict --backend kubernetes -n ml --workflow NAME" in refused.json()["error"]
    assert dashboard.get("/api/workflows/run1/model-input").status_code == 503
    assert "/static/app.js" in dashboard.get("/").text


def test_local_dashboard_has_no_cluster_notes(tmp_path: Path, serve: Any) -> None:
    from trainflow.workflows.local.backend import LocalBackend

    local = serve(LocalBackend(tmp_path / "home"))
    assert local.get("/api/backend").json() == {"name": "local", "namespace": None, "limits": []}
