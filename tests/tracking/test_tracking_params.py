"""`-p mlflow-tracking-uri=` / `--tracking-uri` and `-p mlflow-experiment=`: the run tracks to that server and
experiment (winning over MLFLOW_TRACKING_URI / MLFLOW_EXPERIMENT_NAME), and a bad URI is refused before anything
runs. Read back from the real `mlflow server` fixture."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from tests.servers import free_port
from tests.tracking.conftest import MlflowServer, run_trainflow

STEPS = """
import mlflow
def score(x: int) -> dict:
    mlflow.log_metric("user/f1", 0.5 + x / 10)  # the user's own plain mlflow call, in the step's run
    return {"value": str(x * 2)}
"""

PIPELINE = """
from trainflow.pipelines import Call, Param, Pipeline, param

PIPELINE = Pipeline(
    name="tracked-params",
    params=(
        Param("x", 1, type="int"),
        Param("mlflow-tracking-uri", "", "Where to track.", type="tracking-uri"),
        Param("mlflow-experiment", "", "Which experiment.", type="tracking-experiment"),
    ),
    steps=(Call(name="score", function="param_steps:score", inputs={"x": param("x")}, outputs=("value",), cache=False),),
)
"""

UNTRACKED = """
from trainflow.pipelines import Call, Pipeline

PIPELINE = Pipeline(
    name="no-tracking-param", params=(), steps=(Call(name="s", function="param_steps:score", inputs={"x": 1}),)
)
"""


def _project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "param_steps.py").write_text(dedent(STEPS))
    (root / "pipeline.py").write_text(dedent(PIPELINE))
    (root / "untracked.py").write_text(dedent(UNTRACKED))
    return root / "pipeline.py"


def _dead_uri() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens: a run that tracked there would have failed


def test_the_parameters_win_over_the_variables_for_the_workflow_and_its_steps(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    pipeline = _project(tmp_path / "project")
    env = {"MLFLOW_TRACKING_URI": _dead_uri(), "MLFLOW_EXPERIMENT_NAME": "not-this-one"}
    params = ["-p", f"mlflow-tracking-uri={mlflow_server.uri}", "-p", "mlflow-experiment=chosen by param"]
    done = run_trainflow(tmp_path / "home", env, "submit", str(pipeline), "-p", "x=3", *params, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    workflow, steps = mlflow_server.workflow_runs("chosen by param")
    assert workflow.info.status == "FINISHED"
    assert workflow.data.params["mlflow-tracking-uri"] == mlflow_server.uri and workflow.data.params["x"] == "3"
    [step] = steps
    assert step.info.run_name == "score" and step.info.status == "FINISHED"
    history = mlflow_server.client().get_metric_history(step.info.run_id, "user/f1")
    assert [m.value for m in history] == [pytest.approx(0.8)]  # the step's own mlflow calls went there too
    assert mlflow_server.client().get_experiment_by_name("not-this-one") is None


def test_tracking_uri_option_on_submit_and_retry_keeps_tracking_there(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    pipeline = _project(tmp_path / "project")
    home = tmp_path / "home"
    env = {"MLFLOW_TRACKING_URI": "", "MLFLOW_EXPERIMENT_NAME": "by-option"}
    done = run_trainflow(home, env, "submit", str(pipeline), "--tracking-uri", mlflow_server.uri, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    workflow, steps = mlflow_server.workflow_runs("by-option")
    assert workflow.info.status == "FINISHED" and [s.info.run_name for s in steps] == ["score"]
    [info] = json.loads(run_trainflow(home, {}, "list", "-o", "json").stdout)
    assert info["params"]["mlflow-tracking-uri"] == mlflow_server.uri  # recorded: a retry tracks there again


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("ftp://mlflow.example.com", "is not a tracking URI"),
        ("http://alice:s3cret@127.0.0.1:5000", "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"),
        ("http://127.0.0.1:5000/x'}}{{workflow.name", "is not a tracking URI"),
        ("unreachable", "cannot reach the MLflow tracking server at http://127.0.0.1:"),
    ],
)
@pytest.mark.parametrize("how", ["param", "option"])
def test_a_bad_tracking_uri_is_one_error_line_and_nothing_runs(tmp_path: Path, uri: str, says: str, how: str) -> None:
    uri = _dead_uri() if uri == "unreachable" else uri
    given = ["-p", f"mlflow-tracking-uri={uri}"] if how == "param" else ["--tracking-uri", uri]
    out = run_trainflow(tmp_path, {"MLFLOW_TRACKING_URI": ""}, "submit", "model-train", "-p", "job-name=never", *given)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: ") and says in out.stderr, out.stderr
    assert "s3cret" not in out.stdout + out.stderr
    assert json.loads(run_trainflow(tmp_path, {}, "list", "-o", "json").stdout) == []


def test_tracking_uri_option_on_run_is_checked_before_anything_runs(tmp_path: Path) -> None:
    out = run_trainflow(tmp_path, {}, "run", "--tracking-uri", "http://bob:pw@127.0.0.1:1", "--job-name", "never")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "mlflow-tracking-uri" in out.stderr and "pw" not in out.stderr
    assert json.loads(run_trainflow(tmp_path, {}, "list", "-o", "json").stdout) == []


def test_tracking_uri_option_for_a_pipeline_without_the_parameter_says_how_to_add_it(tmp_path: Path) -> None:
    _project(tmp_path / "project")
    untracked = tmp_path / "project" / "untracked.py"
    out = run_trainflow(tmp_path, {}, "submit", str(untracked), "--tracking-uri", "http://127.0.0.1:5000")
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.count("\n") == 1 and 'type="tracking-uri"' in out.stderr, out.stderr


def test_a_bad_experiment_name_is_one_error_line(tmp_path: Path) -> None:
    out = run_trainflow(
        tmp_path, {}, "submit", "model-train", "-p", "job-name=x", "-p", f"mlflow-experiment={'e' * 300}"
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "experiment name" in out.stderr, out.stderr
    assert json.loads(run_trainflow(tmp_path, {}, "list", "-o", "json").stdout) == []


@pytest.mark.slow
def test_trainflow_run_tracks_the_training_curves_where_its_option_says(
    mlflow_server: MlflowServer, mnist_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {"MLFLOW_TRACKING_URI": _dead_uri()}
    request.addfinalizer(lambda: run_trainflow(tmp_path / "home", env, "delete", "run-option"))  # its TensorBoard
    done = run_trainflow(
        tmp_path / "home",
        env,
        "run",
        "--data-url",
        str(mnist_dir),
        "--workers",
        "1",
        "--steps",
        "30",
        "--no-serving",
        "--job-name",
        "run-option",
        "--tracking-uri",
        mlflow_server.uri,
        "-p",
        "mlflow-experiment=run-option-exp",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    workflow, steps = mlflow_server.workflow_runs("run-option-exp")
    assert workflow.info.run_name == "run-option" and workflow.info.status == "FINISHED"
    [trained] = [s for s in steps if s.info.run_name == "train-model"]
    assert len(mlflow_server.client().get_metric_history(trained.info.run_id, "train/loss")) > 1
