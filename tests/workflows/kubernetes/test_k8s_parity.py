"""Parity: every step's command in the Argo workflow is the command the local runner executes, from the one spec."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workflows.kubernetes.k8s_cluster_sim import fill, workflow_values
from trainflow.workflows import MODEL_DEPLOY, MODEL_TRAIN, Pipeline
from trainflow.workflows.kubernetes import compile_pipeline
from trainflow.workflows.kubernetes.render import OUTPUTS_DIR
from trainflow.workflows.kubernetes.yamltext import load
from trainflow.workflows.local.commands import step_command

# What earlier steps wrote: the runner feeds these to later steps (Argo through task output parameters).
OUTPUTS = {
    "download-dataset": {
        "dataset-name": "mnist",
        "dataset-path": "/var/lib/trainflow/cache/datasets/mnist",
        "bytes-downloaded": 11594722,
    },
    "get-workflow-info": {
        "train-dir": "s3://models/unfinished/myjob/",
        "logs-dir": "s3://models/unfinished/myjob/logs/",
        "checkpoints-dir": "s3://models/unfinished/myjob/checkpoints/",
        "export-base": "s3://models/exported/myjob/",
    },
    "export-model": {
        "model-version": 1,
        "model-url": "s3://models/exported/myjob/1/",
        "export-base": "s3://models/exported/myjob/",
    },
}


def template(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in workflow["spec"]["templates"] if t["name"] == name)


def task_inputs(
    workflow: dict[str, Any], step: str, outputs: dict[str, dict[str, Any]], extra: dict[str, str]
) -> dict[str, str]:
    """The step template's input parameters as Argo resolves them from the DAG task's arguments."""
    task_outputs = {f"tasks.{s}.outputs.parameters.{k}": str(v) for s, out in outputs.items() for k, v in out.items()}
    task = next(t for t in template(workflow, workflow["spec"]["entrypoint"])["dag"]["tasks"] if t["name"] == step)
    return {
        f"inputs.parameters.{p['name']}": fill(
            p["value"], {**task_outputs, **{"item": extra.get("inputs.parameters.item", "")}}
        )
        for p in task.get("arguments", {}).get("parameters", [])
    }


def argvs_in_workflow(
    workflow: dict[str, Any],
    step: str,
    outputs: dict[str, dict[str, Any]] | None = None,
    extra: dict[str, str] | None = None,
) -> list[list[str]]:
    """Every argv the cluster runs for `step`: its container, its Deployment's container, or each training pod's."""
    values = {
        **workflow_values(workflow),
        **task_inputs(workflow, step, OUTPUTS if outputs is None else outputs, extra or {}),
    }
    t = template(workflow, step)
    if "container" in t:
        return [[fill(a, values) for a in t["container"]["command"] + t["container"]["args"]]]
    if "steps" in t:  # a service: the group forwards its inputs to the Deployment's template
        call = t["steps"][0][0]
        values.update(
            {
                f"inputs.parameters.{p['name']}": fill(p["value"], values)
                for p in call.get("arguments", {}).get("parameters", [])
            }
        )
        t = template(workflow, call["template"])
    manifest = load(fill(t["resource"]["manifest"], values))
    if manifest["kind"] == "Deployment":
        pods = [manifest["spec"]["template"]]
    else:
        pods = [
            r["template"] for r in next(v for k, v in manifest["spec"].items() if k.endswith("ReplicaSpecs")).values()
        ]
    return [c["command"] + c["args"] for pod in pods for c in pod["spec"]["containers"]]


CASES = [
    (
        MODEL_TRAIN,
        {"tf-worker": "3", "s3-train-base-url": "s3://models", "aws-endpoint-url": "http://minio:9000"},
        "pytorchjob",
    ),
    (MODEL_TRAIN, {"tf-worker": "2", "tf-ps": "1", "model": "mlp", "model-train-steps": "50"}, "tfjob"),
    (MODEL_DEPLOY, {"workflow": "myjob", "s3-train-base-url": "s3://models"}, "pytorchjob"),
]


@pytest.mark.parametrize(
    ("pipeline", "params", "job_kind"), CASES, ids=["model-train-pytorchjob", "model-train-tfjob", "model-deploy"]
)
def test_every_step_runs_the_command_the_local_runner_runs(
    pipeline: Pipeline, params: dict[str, str], job_kind: str
) -> None:
    [workflow] = compile_pipeline(pipeline, params, job_kind)
    values = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    for step in pipeline.steps:
        # The same command; only where a service listens differs (a pod binds every address).
        local = step_command(step, values, OUTPUTS, host="0.0.0.0")
        on_cluster = argvs_in_workflow(workflow, step.name)
        assert on_cluster and all(argv == local for argv in on_cluster), step.name


def test_training_pods_run_the_train_model_step_with_the_steps_own_arguments() -> None:
    [workflow] = compile_pipeline(MODEL_TRAIN, {"tf-worker": "3"}, "pytorchjob")
    argvs = argvs_in_workflow(workflow, "train-model")
    assert len(argvs) == 1  # one Worker replica spec
    assert all(argv[:3] == ["trainflow", "step", "train-model"] and "--outputs" not in argv for argv in argvs)
    assert argvs[0][argvs[0].index("--data-dir") + 1] == OUTPUTS["download-dataset"]["dataset-path"]


def test_steps_outputs_are_read_from_the_files_the_step_writes() -> None:
    [workflow] = compile_pipeline(MODEL_TRAIN, {})
    for step in MODEL_TRAIN.steps:
        t = template(workflow, step.name)
        if "container" not in t:
            continue
        declared = {p["name"]: p["valueFrom"]["path"] for p in t.get("outputs", {}).get("parameters", [])}
        assert declared == {key: f"{OUTPUTS_DIR}{key}" for key in step.declared_outputs()}
        assert {"name": "TRAINFLOW_OUTPUTS", "value": OUTPUTS_DIR} in t["container"]["env"]
