"""A tracked compiled workflow, without a cluster: every pod gets what it finds the workflow's MLflow run by (the
workflow's uid and name, the pipeline), and the exit handler ends that run by `{{workflow.status}}`, beside the
training jobs' cleanup; the output passes the schemas and the strict checks. (The pods' side of it runs against a
real server in tests/tracking/test_cluster_workflow_run.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from tests.workflows.kubernetes.test_k8s_manifests import Validate, all_schema_errors, compiled, template
from tests.workflows.kubernetes.test_k8s_tracking_secret import pod_containers
from trainflow.tracking.cluster_run import PARAMS_ENV, PIPELINE_ENV, WORKFLOW_NAME_ENV, WORKFLOW_UID_ENV
from trainflow.workflows.kubernetes import problems
from trainflow.workflows.kubernetes.tracking_exit import END_TEMPLATE

KEYS = {WORKFLOW_UID_ENV: "{{workflow.uid}}", WORKFLOW_NAME_ENV: "{{workflow.name}}", PIPELINE_ENV: "model-train"}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_every_tracked_pod_finds_the_workflow_run_by_its_uid_without_a_cluster(job_kind: str) -> None:
    workflow = compiled(job_kind, **{"mlflow-secret": "team-mlflow", "tf-worker": "2"})
    containers = pod_containers(workflow)
    assert any(c["name"] in ("pytorch", "tensorflow") for c in containers)  # the training jobs' pods too
    name = workflow["metadata"]["name"]
    for container in containers:
        env = env_of(container)
        assert env[WORKFLOW_NAME_ENV] in ("{{workflow.name}}", name)  # a job's pods are read back filled in
        assert {k: env.get(k) for k in KEYS if k != WORKFLOW_NAME_ENV} == {
            WORKFLOW_UID_ENV: "{{workflow.uid}}",  # known once the workflow exists: Argo fills it in
            PIPELINE_ENV: "model-train",
        }, container["name"]


def test_the_exit_handler_ends_the_workflow_run_beside_the_cleanup_without_a_cluster(validate: Validate) -> None:
    workflow = compiled(**{"mlflow-secret": "team-mlflow"})
    handler = template(workflow, workflow["spec"]["onExit"])
    tasks = {t["name"]: t for t in handler["dag"]["tasks"]}
    assert set(tasks) == {"cleanup", END_TEMPLATE} and all("depends" not in t for t in tasks.values())
    end = template(workflow, END_TEMPLATE)["container"]
    assert end["command"] + end["args"] == ["trainflow", "step", "mlflow-end-run", "--status", "{{workflow.status}}"]
    env = env_of(end)
    assert env[PARAMS_ENV] == "{{workflow.parameters.json}}" and env[WORKFLOW_UID_ENV] == "{{workflow.uid}}"
    assert env["MLFLOW_TRACKING_URI"] == {
        "secretKeyRef": {"name": "{{workflow.parameters.mlflow-secret}}", "key": "MLFLOW_TRACKING_URI"}
    }
    assert end["image"] == template(workflow, "download-dataset")["container"]["image"]
    assert all_schema_errors(workflow, validate) == []
    assert problems(workflow) == []


def test_an_untracked_workflow_has_no_run_to_find_or_end_without_a_cluster() -> None:
    workflow = compiled()
    assert workflow["spec"]["onExit"] == "cleanup"
    assert END_TEMPLATE not in {t["name"] for t in workflow["spec"]["templates"]}
    assert all(not set(KEYS) & set(env_of(c)) for c in pod_containers(workflow))
