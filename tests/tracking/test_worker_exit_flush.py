"""A training worker ends with os._exit (past atexit): its curve points still reach MLflow first, on failure as on
success, and a server that is down holds the exit a few seconds at most (against the real `mlflow server` fixture)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from textwrap import dedent

import pytest

from tests.servers import free_port
from tests.tracking.conftest import MlflowServer, run_trainflow
from trainflow.tracking.sink import MetricSink, close_sinks

POINTS = 7

STEPS = """
from trainflow.pipelines import report_progress

def fit(points: int) -> dict:
    for step in range(1, points + 1):  # no total: no last step waits for the server
        report_progress(step, loss=1.0 / step)
    raise RuntimeError("diverged right after the curve")
"""

PIPELINE = """
from trainflow.pipelines import Param, Pipeline, Train, param

PIPELINE = Pipeline(
    name="fails-after-curve",
    params=(Param("points", 1, type="int"),),
    steps=(Train(name="fit", function="exit_steps:fit", inputs={"points": param("points")}, workers=1, cache=False),),
)
"""


@pytest.mark.slow
def test_a_train_function_that_raises_after_logging_leaves_every_point_and_a_failed_run(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "exit_steps.py").write_text(dedent(STEPS))
    (project / "pipeline.py").write_text(dedent(PIPELINE))
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "MLFLOW_EXPERIMENT_NAME": "fails-after-curve"}
    args = ("submit", str(project / "pipeline.py"), "-p", f"points={POINTS}", "--wait")
    done = run_trainflow(tmp_path / "home", env, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    workflow, [step] = mlflow_server.workflow_runs("fails-after-curve")
    assert step.info.run_name == "fit" and step.info.status == "FAILED"
    assert workflow.info.status == "FAILED"
    history = mlflow_server.client().get_metric_history(step.info.run_id, "loss")
    assert sorted(m.step for m in history) == list(range(1, POINTS + 1))
    assert step.data.tags.get("trainflow.tracking") != "incomplete"
    run_trainflow(tmp_path / "home", {}, "delete", "--all")


def test_closing_the_sinks_before_exit_waits_a_bounded_time_for_a_server_that_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trainflow.tracking import sink

    down = f"http://127.0.0.1:{free_port()}"
    stalled = MetricSink(down, "0" * 32, flush_seconds=60)
    stalled.record(1, {"loss": 1.0})
    monkeypatch.setitem(sink._sinks, (os.getpid(), "0" * 32), stalled)
    monkeypatch.setattr(sink, "mark_incomplete", lambda *_: time.sleep(60))  # a tag that would never return
    started = time.monotonic()
    assert close_sinks(timeout=1.0) is False
    assert time.monotonic() - started < 3.0
    assert (os.getpid(), "0" * 32) not in sink._sinks
