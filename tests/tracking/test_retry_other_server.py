"""`trainflow retry NAME -p mlflow-tracking-uri=OTHER` moves the workflow's MLflow run with its steps: a new workflow
run on OTHER, tagged with the run it continues, the retried steps nested under it, the first server's run left as it
ended (against two real `mlflow server`s)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from tests.tracking.conftest import GATED_STEPS, MlflowServer, run_trainflow, start_mlflow, stop_mlflow
from trainflow.tracking import RUN_RECORD

PIPELINE = """
from trainflow.pipelines import Call, Param, Pipeline, output, param

PIPELINE = Pipeline(
    name="moving",
    params=(Param("marker", ""), Param("mlflow-tracking-uri", "", "Where to track.", type="tracking-uri")),
    steps=(
        Call(name="gate", function="moving_steps:gate", inputs={"marker": param("marker")}, outputs=("ok",), cache=False),
        Call(name="after", function="moving_steps:after", inputs={"ok": output("gate", "ok")}, outputs=("done",)),
    ),
)
"""


@pytest.fixture
def other_server(tmp_path: Path) -> Iterator[MlflowServer]:
    server = start_mlflow(tmp_path / "other-mlflow")
    try:
        yield server
    finally:
        stop_mlflow(server)


def test_retry_with_another_tracking_uri_opens_the_workflow_run_there_and_nests_the_retried_steps(
    mlflow_server: MlflowServer, other_server: MlflowServer, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "moving_steps.py").write_text(dedent(GATED_STEPS))
    (project / "pipeline.py").write_text(dedent(PIPELINE))
    marker, home = tmp_path / "marker", tmp_path / "home"
    env = {"MLFLOW_TRACKING_URI": "", "MLFLOW_EXPERIMENT_NAME": "moving"}
    given = ("-p", f"marker={marker}", "-p", f"mlflow-tracking-uri={mlflow_server.uri}")
    failed = run_trainflow(home, env, "submit", str(project / "pipeline.py"), *given, "--wait")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    first, _ = mlflow_server.workflow_runs("moving")
    assert first.info.status == "FAILED"

    marker.write_text("here")
    name = json.loads(run_trainflow(home, {}, "list", "-o", "json").stdout)[0]["name"]
    retried = run_trainflow(home, env, "retry", name, "-p", f"mlflow-tracking-uri={other_server.uri}", "--wait")
    assert retried.returncode == 0, retried.stdout + retried.stderr

    moved, steps = other_server.workflow_runs("moving")
    assert moved.info.status == "FINISHED" and moved.info.run_name == name
    assert moved.data.tags["trainflow.retry-of"] == f"{mlflow_server.uri} {first.info.run_id}"
    assert moved.data.params["mlflow-tracking-uri"] == other_server.uri
    assert sorted((r.info.run_name, r.info.status) for r in steps) == [("after", "FINISHED"), ("gate", "FINISHED")]
    again, before = mlflow_server.workflow_runs("moving")  # the first server keeps the run as it ended
    assert again.info.run_id == first.info.run_id and again.info.status == "FAILED"
    assert [(r.info.run_name, r.info.status) for r in before] == [("gate", "FAILED")]
    record = json.loads((home / "workflows" / name / RUN_RECORD).read_text())
    assert record == {"run_id": moved.info.run_id, "uri": other_server.uri}  # a later retry reopens the moved run
