"""A local workflow's MLflow run ends honestly: `trainflow retry` from a shell without MLFLOW_TRACKING_URI reopens it on
the server it was started with (whose URI the run keeps, without credentials), and a runner killed with SIGKILL leaves
it KILLED at the next `trainflow get`, not RUNNING forever (against the real `mlflow server` fixture)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.tracking.conftest import MlflowServer, run_trainflow
from tests.tracking.test_workflow_run_end import _project
from trainflow.workflows.local.layout import Layout
from trainflow.workflows.local.state import StateStore


def _step_status(home: Path, name: str, step: str) -> str:
    got = json.loads(run_trainflow(home, {}, "get", name, "-o", "json").stdout)
    return next((s["status"] for s in got["steps"] if s["name"] == step), "")


def test_retry_without_the_variable_reopens_the_run_on_its_server_and_ends_it_finished(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    pipeline = _project(tmp_path / "project")
    marker = tmp_path / "marker"
    host = mlflow_server.uri.removeprefix("http://")
    tracked = {
        "MLFLOW_TRACKING_URI": f"http://alice:pw-that-must-not-leak@{host}",
        "MLFLOW_EXPERIMENT_NAME": "retry-env",
    }
    home = tmp_path / "home"
    failed = run_trainflow(home, tracked, "submit", str(pipeline), "-p", f"marker={marker}", "--wait")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    workflow, _ = mlflow_server.workflow_runs("retry-env")
    assert workflow.info.status == "FAILED"

    marker.write_text("here")
    name = json.loads(run_trainflow(home, {}, "list", "-o", "json").stdout)[0]["name"]
    untracked = {"MLFLOW_TRACKING_URI": "", "MLFLOW_EXPERIMENT_NAME": ""}
    retried = run_trainflow(home, untracked, "retry", name, "--wait")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    again, steps = mlflow_server.workflow_runs("retry-env")
    assert again.info.run_id == workflow.info.run_id and again.info.status == "FINISHED"
    assert ("wait", "FINISHED") in [(r.info.run_name, r.info.status) for r in steps]  # the retried steps nest under it
    kept = [p for p in home.rglob("*") if p.is_file() and b"pw-that-must-not-leak" in p.read_bytes()]
    assert kept == []  # the state keeps the server's URI, never its credentials


def test_a_runner_killed_with_sigkill_leaves_its_run_killed_at_the_next_get(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    pipeline = _project(tmp_path / "project")
    marker = tmp_path / "marker"
    marker.write_text("here")
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "MLFLOW_EXPERIMENT_NAME": "killed-runner"}
    home = tmp_path / "home"
    args = ("submit", str(pipeline), "-p", f"marker={marker}", "-p", "seconds=120")
    assert run_trainflow(home, env, *args).returncode == 0
    name = json.loads(run_trainflow(home, {}, "list", "-o", "json").stdout)[0]["name"]
    deadline = time.monotonic() + 120
    while _step_status(home, name, "wait") != "Running" and time.monotonic() < deadline:
        time.sleep(0.5)
    runner, _ = StateStore(Layout(home).db).runner(name)
    assert runner is not None
    os.kill(runner, signal.SIGKILL)
    while time.monotonic() < deadline:  # `get` notices the dead runner once its process is gone
        got = json.loads(run_trainflow(home, {"MLFLOW_TRACKING_URI": ""}, "get", name, "-o", "json").stdout)
        if got["status"] == "Failed":
            break
        time.sleep(0.5)
    assert "runner process" in got["message"]
    workflow, steps = mlflow_server.workflow_runs("killed-runner")
    assert workflow.info.status == "KILLED" and workflow.info.end_time
    assert "RUNNING" not in [r.info.status for r in steps]
