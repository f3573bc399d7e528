"""A local workflow's MLflow run ends honestly: `trainflow retry` from a shell without MLFLOW_TRACKING_URI reopens it on
the server it was started with (whose URI the run keeps, without credentials), and a runner killed with SIGKILL leaves
it KILLED at the next `trainflow get`, not RUNNING forever (against the real `mlflow server` fixture)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.tracking.conftest import MlflowServer, run_trainflow
from tests.tracking.test_workflow_run_end import _project, _runs


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
    workflow, _ = _runs(mlflow_server, "retry-env")
    assert workflow.info.status == "FAILED"

    marker.write_text("here")
    name = json.loads(run_trainflow(home, {}, "list", "-o", "json").stdout)[0]["name"]
    untracked = {"MLFLOW_TRACKING_URI": "", "MLFLOW_EXPERIMENT_NAME": ""}
    retried = run_trainflow(home, untracked, "retry", name, "--wait")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    again, steps = _runs(mlflow_server, "retry-env")
    assert again.info.run_id == workflow.info.run_id and again.info.status == "FINISHED"
    assert ("wait", "FINISHED") in [(r.info.run_name, r.info.status) for r in steps]  # the retried steps nest under it
    kept = [p for p in home.rglob("*") if p.is_file() and b"pw-that-must-not-leak" in p.read_bytes()]
    assert kept == []  # the state keeps the server's URI, never its credentials
