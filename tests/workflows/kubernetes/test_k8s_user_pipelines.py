"""Users' pipelines compile to valid Argo Workflows for both job kinds, and run the commands the local runner runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.workflows.kubernetes.k8s_cluster_sim import workflow_values
from tests.workflows.kubernetes.test_k8s_manifests import (
    all_schema_errors,
    by_kind,
    template,
)
from tests.workflows.kubernetes.test_k8s_parity import argvs_in_workflow
from trainflow.pipelines.loading import load_pipeline
from trainflow.workflows import WorkflowError
from trainflow.workflows.kubernetes import compile_pipeline, problems
from trainflow.workflows.local.commands import step_command
from trainflow.workflows.local.plan import items

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "sweep"
FORMS = ["pipeline.py", "pipeline.yaml"]


ARTIFACTS = "s3://team-bucket/sweep"


def compiled(form: str, job_kind: str) -> dict[str, Any]:
    [workflow] = compile_pipeline(load_pipeline(str(EXAMPLES / form)), {"artifacts": ARTIFACTS}, job_kind)
    return workflow


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_steps_that_publish_artifacts_publish_them_to_the_workflow_parameter_s_store(job_kind: str) -> None:
    workflow = compiled("pipeline.py", job_kind)
    published = env_of(template(workflow, "make-data")["container"])["TRAINFLOW_ARTIFACTS_URL"]
    assert published == "{{workflow.parameters.artifacts}}/{{workflow.name}}/make-data"
    assert "TRAINFLOW_ARTIFACTS_URL" not in env_of(template(workflow, "pick")["container"])  # it publishes nothing


def test_a_pipeline_whose_steps_publish_artifacts_needs_an_s3_store_to_compile() -> None:
    with pytest.raises(WorkflowError, match="step make-data publishes artifacts, and on Kubernetes pods share no disk"):
        compile_pipeline(load_pipeline(str(EXAMPLES / "pipeline.py")), {}, "pytorchjob")


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
@pytest.mark.parametrize("form", FORMS)
def test_the_sweep_example_validates_for_both_job_kinds(validate: Any, form: str, job_kind: str) -> None:
    workflow = compiled(form, job_kind)
    assert all_schema_errors(workflow, validate) == [] and problems(workflow) == []
    assert workflow["metadata"]["generateName"] == "sweep-"
    tasks = {t["name"]: t for t in template(workflow, "sweep")["dag"]["tasks"]}
    assert tasks["fit"]["withItems"] == ["0.05", "0.2", "0.5"]
    assert tasks["report"]["when"] == (
        "{{=asFloat(tasks['pick'].outputs.parameters['best-loss']) < asFloat(workflow.parameters['max-loss'])}}"
    )
    assert tasks["pick"]["arguments"]["parameters"][0]["value"] == "{{tasks.fit.outputs.parameters.loss}}"
    job = "PyTorchJob" if job_kind == "pytorchjob" else "TFJob"
    [training] = by_kind(workflow, job)
    replicas = training["spec"]["pytorchReplicaSpecs" if job_kind == "pytorchjob" else "tfReplicaSpecs"]
    assert sum(r["replicas"] for r in replicas.values()) == 2  # the workers parameter
    assert [d["metadata"]["name"] for d in by_kind(workflow, "Deployment")] == ["sweep-xxxxx-show"]
    assert {"memoize"} <= set(template(workflow, "make-data")) and "memoize" not in template(workflow, "show")
    assert template(workflow, "fit")["outputs"]["parameters"][0]["valueFrom"]["parameter"].startswith("{{steps.outputs")


def test_yaml_and_python_forms_compile_to_the_same_workflow() -> None:
    assert compiled("pipeline.py", "pytorchjob") == compiled("pipeline.yaml", "pytorchjob")


def test_every_step_of_the_sweep_runs_the_command_the_local_runner_runs() -> None:
    pipeline = load_pipeline(str(EXAMPLES / "pipeline.py"))
    workflow = compiled("pipeline.py", "pytorchjob")
    workflow["metadata"]["name"] = "sweep-abc12"
    values = workflow_values(workflow)
    params = {k.removeprefix("workflow.parameters."): v for k, v in values.items() if k.startswith("workflow.")}
    outputs = {
        "make-data": {"data": "/data.json"},
        "fit": {"loss": "[0.3, 0.2, 0.1]"},
        "pick": {"best-lr": "0.5", "best-loss": "0.1"},
        "report": {"report": "/r"},
    }
    for step in pipeline.steps:
        for item in items(step, params) or [None]:
            local = step_command(step, params, outputs, item=item, host="0.0.0.0")
            extra = {"inputs.parameters.item": item} if item else {}
            on_cluster = argvs_in_workflow(workflow, step.name, outputs, extra)
            assert on_cluster and all(argv == local for argv in on_cluster), step.name


def test_resources_timeouts_retries_and_a_parameter_fan_out_reach_the_workflow(validate: Any) -> None:
    from trainflow.pipelines import ITEM, Command, Param, Pipeline, Resources, param

    pipeline = Pipeline(
        name="res",
        params=(Param("lrs", '["0.1", "0.2"]'),),
        steps=(
            Command(
                name="fit",
                argv=("python", "fit.py", "--lr", ITEM),
                for_each=param("lrs"),
                image="python:3.11",
                resources=Resources(cpu="2", memory="4Gi", gpu=1),
                timeout=600,
                retries=3,
                backoff=5,
                retry_on="any",
            ),
        ),
    )
    [workflow] = compile_pipeline(pipeline, {}, "pytorchjob")
    assert all_schema_errors(workflow, validate) == [] and problems(workflow) == []
    fit = template(workflow, "fit")
    assert fit["container"]["image"] == "python:3.11" and fit["container"]["command"] == ["python"]
    assert fit["container"]["resources"]["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert fit["activeDeadlineSeconds"] == 600
    assert fit["retryStrategy"] == {"limit": "3", "retryPolicy": "Always", "backoff": {"duration": "5s", "factor": "2"}}
    [task] = [t for t in template(workflow, "res")["dag"]["tasks"] if t["name"] == "fit"]
    assert task["withParam"] == "{{workflow.parameters.lrs}}"
