"""The workflow's own MLflow run ends with the workflow (FINISHED, FAILED, KILLED), `trainflow retry` reopens it, and
a model registered with tracking off is refused before anything runs (against the real `mlflow server` fixture)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from textwrap import dedent

from tests.tracking.conftest import GATED_STEPS, MlflowServer, run_trainflow

PIPELINE = """
from trainflow.pipelines import Call, Param, Pipeline, output, param

PIPELINE = Pipeline(
    name="gated-end",
    params=(Param("marker", "", "A file the gate waits for."), Param("seconds", 0, type="int")),
    steps=(
        Call(name="gate", function="end_steps:gate", inputs={"marker": param("marker")}, outputs=("ok",), cache=False),
        Call(name="after", function="end_steps:after", inputs={"ok": output("gate", "ok")}, outputs=("done",)),
        Call(name="wait", function="end_steps:wait", inputs={"seconds": param("seconds")}, depends=("after",),
             cache=False),
    ),
)
"""


def _project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "end_steps.py").write_text(dedent(GATED_STEPS))
    (root / "pipeline.py").write_text(dedent(PIPELINE))
    return root / "pipeline.py"


def test_a_failed_run_ends_failed_and_retry_reopens_the_same_run_to_finished(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    pipeline = _project(tmp_path / "project")
    marker = tmp_path / "marker"
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "MLFLOW_EXPERIMENT_NAME": "end-retry"}
    home = tmp_path / "home"
    failed = run_trainflow(home, env, "submit", str(pipeline), "-p", f"marker={marker}", "--wait")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    workflow, steps = mlflow_server.workflow_runs("end-retry")
    assert workflow.info.status == "FAILED" and workflow.info.end_time
    assert [(r.info.run_name, r.info.status) for r in steps] == [("gate", "FAILED")]

    marker.write_text("here")
    name = json.loads(run_trainflow(home, env, "list", "-o", "json").stdout)[0]["name"]
    retried = run_trainflow(home, env, "retry", name, "--wait")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    again, steps = mlflow_server.workflow_runs("end-retry")  # still one workflow run: the same, reopened
    assert again.info.run_id == workflow.info.run_id
    assert again.info.status == "FINISHED" and again.info.end_time >= workflow.info.end_time
    ended = sorted((r.info.run_name, r.info.status) for r in steps)
    assert ended == [("after", "FINISHED"), ("gate", "FAILED"), ("gate", "FINISHED"), ("wait", "FINISHED")]
    (after,) = [r for r in steps if r.info.run_name == "after"]  # its log, uploaded as the step ended
    client = mlflow_server.client()
    assert [a.path for a in client.list_artifacts(after.info.run_id, "logs")] == ["logs/after.log"]
    log = Path(client.download_artifacts(after.info.run_id, "logs/after.log", str(tmp_path)))
    assert "after: the gate said yes" in log.read_text()


def test_a_stopped_run_ends_killed(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    pipeline = _project(tmp_path / "project")
    marker = tmp_path / "marker"
    marker.write_text("here")
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "MLFLOW_EXPERIMENT_NAME": "end-stop"}
    home = tmp_path / "home"
    args = ("submit", str(pipeline), "-p", f"marker={marker}", "-p", "seconds=120")
    assert run_trainflow(home, env, *args).returncode == 0
    name = json.loads(run_trainflow(home, env, "list", "-o", "json").stdout)[0]["name"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the wait step runs
        steps = {
            s["name"]: s["status"]
            for s in json.loads(run_trainflow(home, env, "get", name, "-o", "json").stdout)["steps"]
        }
        if steps.get("wait") == "Running":
            break
        time.sleep(0.5)
    stopped = run_trainflow(home, env, "stop", name)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    while time.monotonic() < deadline:
        workflow, _ = mlflow_server.workflow_runs("end-stop")
        if workflow.info.status != "RUNNING":
            break
        time.sleep(0.5)
    assert workflow.info.status == "KILLED"


def test_register_model_with_tracking_off_is_one_error_line_and_nothing_runs(tmp_path: Path) -> None:
    out = run_trainflow(
        tmp_path, {"MLFLOW_TRACKING_URI": ""}, "submit", "model-train", "-p", "register-model=mnist", "--wait"
    )
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    for way in ("MLFLOW_TRACKING_URI", "--tracking-uri", "-p mlflow-tracking-uri="):  # every way to turn tracking on
        assert way in lines[0], out.stderr
    listed = run_trainflow(tmp_path, {}, "list", "-o", "json")
    assert json.loads(listed.stdout or "[]") == []
