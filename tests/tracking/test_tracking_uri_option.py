"""`--tracking-uri` on `trainflow compile` and `trainflow schedule create` means what it means on submit and run: the
pipeline's tracking-uri parameter (`-p mlflow-tracking-uri=`), checked the same way, credentials refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.commands import trainflow
from tests.workflows.kubernetes.test_k8s_tracking_secret import pod_containers
from trainflow.workflows.kubernetes import problems

URI = "http://mlflow.mlflow.svc:5000"
PLACEHOLDER = "{{workflow.parameters.mlflow-tracking-uri}}"
SECRET = "hunter2-must-not-leak"

UNTRACKED = """
from trainflow.pipelines import Call, Pipeline

PIPELINE = Pipeline(name="no-tracking-param", params=(), steps=(Call(name="s", function="steps:f", inputs={}),))
"""


def _parameters(workflow: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p.get("value", "") for p in workflow["spec"]["arguments"]["parameters"]}


def _one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    return lines[0]


def test_compile_tracking_uri_compiles_as_the_parameter_does_with_no_credentials_inline() -> None:
    by_option = trainflow("compile", "model-train", "--tracking-uri", URI)
    by_param = trainflow("compile", "model-train", "-p", f"mlflow-tracking-uri={URI}")
    assert by_option.returncode == 0, by_option.stderr
    assert by_option.stdout == by_param.stdout  # the same meaning, so the same schema-checked output
    workflow = yaml.safe_load(by_option.stdout)
    assert _parameters(workflow)["mlflow-tracking-uri"] == URI
    for container in pod_containers(workflow):
        [entry] = [e for e in container.get("env", []) if e["name"] == "MLFLOW_TRACKING_URI"]
        assert entry["value"] in (PLACEHOLDER, URI), container["name"]
    assert problems(workflow) == []


def test_compile_schedule_tracking_uri_reaches_the_cron_workflows_runs() -> None:
    out = trainflow("compile", "model-train", "--tracking-uri", URI, "--schedule", "0 3 * * *")
    assert out.returncode == 0, out.stderr
    cron = yaml.safe_load(out.stdout)
    assert cron["kind"] == "CronWorkflow"
    assert _parameters({"spec": cron["spec"]["workflowSpec"]})["mlflow-tracking-uri"] == URI


def test_compile_refuses_a_credentialed_or_bad_tracking_uri_in_one_line(tmp_path: Path) -> None:
    line = _one_error_line(trainflow("compile", "model-train", "--tracking-uri", f"http://me:{SECRET}@mlflow:5000"))
    assert "mlflow-tracking-uri" in line and SECRET not in line
    assert "tracking URI" in _one_error_line(trainflow("compile", "model-train", "--tracking-uri", "gopher://h:70"))
    twice = trainflow("compile", "model-train", "--tracking-uri", URI, "-p", "mlflow-tracking-uri=http://other:5000")
    assert "two tracking servers" in _one_error_line(twice)
    (tmp_path / "untracked.py").write_text(UNTRACKED)
    (tmp_path / "steps.py").write_text("def f() -> dict:\n    return {}\n")
    none = trainflow("compile", str(tmp_path / "untracked.py"), "--tracking-uri", URI)
    assert "no parameter of type tracking-uri" in _one_error_line(none)


def test_schedule_create_tracking_uri_is_the_schedules_parameter() -> None:
    created = trainflow("schedule", "create", "tracked", "model-train", "--every", "1d", "--tracking-uri", URI)
    try:
        assert created.returncode == 0, created.stderr
        got = trainflow("schedule", "get", "tracked", "-o", "json")
        assert json.loads(got.stdout)["params"]["mlflow-tracking-uri"] == URI
    finally:
        trainflow("schedule", "delete", "tracked")


def test_schedule_create_refuses_a_credentialed_tracking_uri_and_creates_nothing() -> None:
    out = trainflow(
        "schedule", "create", "leaky", "model-train", "--every", "1d", "--tracking-uri", f"http://me:{SECRET}@h:5000"
    )
    line = _one_error_line(out)
    assert "mlflow-tracking-uri" in line and SECRET not in line
    assert json.loads(trainflow("schedule", "list", "-o", "json").stdout or "[]") == []
