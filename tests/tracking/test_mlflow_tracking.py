"""A model-train run with MLFLOW_TRACKING_URI set is an MLflow run, read back from a real server through MlflowClient."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.commands import steps_by_name
from tests.tracking.conftest import REGISTERED, WORKFLOW, MlflowServer, TrackedRun, run_trainflow


def test_without_the_variable_no_command_imports_mlflow(tmp_path: Path) -> None:
    env = {"MLFLOW_TRACKING_URI": ""}
    for args in (["--help"], ["list"], ["compile", "model-train"]):
        out = run_trainflow(tmp_path, {**env, "PYTHONPROFILEIMPORTTIME": "1"}, *args)
        assert out.returncode == 0, out.stderr
        imported = [line for line in out.stderr.splitlines() if line.startswith("import time:")]
        assert imported, "no import trace"
        assert not [line for line in imported if " mlflow" in line], args


def test_without_the_variable_progress_reports_load_no_tracking_client(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from trainflow.progress import report_progress\n"
        "report_progress(1, 10, loss=0.5)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('mlflow', 'trainflow.tracking.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_an_unreachable_tracking_server_is_one_error_line_and_nothing_runs(tmp_path: Path) -> None:
    from tests.servers import free_port

    uri = f"http://trainflow:s3cret@127.0.0.1:{free_port()}"
    out = run_trainflow(tmp_path, {"MLFLOW_TRACKING_URI": uri}, "submit", "model-train", "-p", "job-name=never")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the MLflow tracking server"), lines
    assert "s3cret" not in out.stderr
    listed = run_trainflow(tmp_path, {}, "list", "-o", "json")
    assert "never" not in listed.stdout


def test_a_malformed_tracking_uri_is_one_error_line(tmp_path: Path) -> None:
    out = run_trainflow(tmp_path, {"MLFLOW_TRACKING_URI": "htp:/nowhere"}, "submit", "model-train", "-p", "job-name=x")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "is not a tracking URI" in out.stderr


@pytest.mark.slow
def test_model_train_logs_params_curves_dataset_artifacts_and_model(
    tracked_run: TrackedRun, mlflow_server: MlflowServer
) -> None:
    client = mlflow_server.client()
    experiment = client.get_experiment_by_name("model-train")  # the pipeline's name
    assert experiment is not None
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    workflow = runs[WORKFLOW]
    assert workflow.data.params["model-train-steps"] == "40" and workflow.data.params["tf-worker"] == "1"
    assert workflow.data.tags["trainflow.pipeline"] == "model-train"
    assert workflow.data.tags["trainflow.backend"] == "local"
    assert workflow.data.tags["trainflow.version"]

    train = runs["train-model"]
    assert train.data.tags["mlflow.parentRunId"] == workflow.info.run_id
    assert train.data.tags["trainflow.workflow"] == WORKFLOW and train.data.tags["trainflow.step"] == "train-model"
    assert train.info.status == "FINISHED"
    assert train.data.params["train-steps"] == "40"
    history = client.get_metric_history(train.info.run_id, "train/loss")
    assert len(history) >= 2 and sorted(m.step for m in history) == [m.step for m in history]
    assert 0 < train.data.metrics["accuracy"] <= 1 and train.data.metrics["global_step"] == 40

    (dataset,) = [d.dataset for d in train.inputs.dataset_inputs]
    cached = Path(steps_by_name(tracked_run.info)["download-dataset"]["outputs"]["dataset-path"])
    descriptor = json.loads((cached / "descriptor.json").read_text())
    assert dataset.name and dataset.source
    assert dataset.digest == descriptor["source_digest"][:36]
    assert json.loads(dataset.profile) == {
        "train_count": descriptor["train_count"],
        "test_count": descriptor["test_count"],
    }
    assert json.loads(dataset.schema)["trainflow"]["input_shape"] == descriptor["input_shape"]

    artifacts = {a.path for a in client.list_artifacts(train.info.run_id)}
    assert {"metrics.json", "signature.json"} <= artifacts
    logged = json.loads(Path(client.download_artifacts(train.info.run_id, "metrics.json")).read_text())
    assert logged["global_step"] == 40

    assert "WARNING" not in tracked_run.train_log, tracked_run.train_log
    assert f"registered as {REGISTERED} version" in tracked_run.train_log, tracked_run.train_log[-3000:]
    version = client.get_model_version_by_alias(REGISTERED, "champion")
    assert version.run_id == train.info.run_id
    assert version.tags["workflow"] == WORKFLOW
    assert abs(float(version.tags["accuracy"]) - train.data.metrics["accuracy"]) < 1e-6

    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)  # else mlflow opens its default store, ./mlflow.db
    mlflow.set_registry_uri(mlflow_server.uri)
    model_dir = Path(
        mlflow.artifacts.download_artifacts(f"models:/{REGISTERED}@champion", tracking_uri=mlflow_server.uri)
    )
    mlmodel = (model_dir / "MLmodel").read_text()
    assert "onnx" in mlmodel and "signature" in mlmodel
    assert (model_dir / "input_example.json").is_file() and (model_dir / "model.onnx").is_file()


def test_a_fan_out_gets_one_nested_run_per_item(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    pipeline = Path(__file__).resolve().parents[2] / "examples" / "fan-out" / "pipeline.py"
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "MLFLOW_EXPERIMENT_NAME": "fan-out-tracked"}
    done = run_trainflow(tmp_path, env, "submit", str(pipeline), "-p", "shards=3", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    client = mlflow_server.client()
    experiment = client.get_experiment_by_name("fan-out-tracked")
    runs = client.search_runs([experiment.experiment_id])
    (workflow,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == workflow.info.run_id}
    assert {"list", "score[0]", "score[1]", "score[2]", "best"} == set(children)
    assert all(r.info.status == "FINISHED" and r.data.tags["trainflow.kind"] == "call" for r in children.values())
    assert workflow.data.params["shards"] == "3"
