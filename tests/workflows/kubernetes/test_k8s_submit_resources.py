"""`argo submit -p train-cpu= -p train-memory= -p train-gpu= -p serve-cpu= -p serve-memory=` size the pods.

Sizes given by parameters are requests (GPUs also limits) in the jobs' and Deployments' manifests, as one
JSON-quoted expression each; filled in by Argo they pass the schemas and the strict checks, and a value that
is not a quantity is caught by the strict checks (and refused by trainflow before anything is compiled).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.workflows.kubernetes.test_k8s_submit_params import argo_submit, assert_valid, manifests
from trainflow.pipelines import Command, Param, Pipeline, Resources, param
from trainflow.workflows import MODEL_TRAIN
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import compile_pipeline, problems, to_yaml

Validate = Callable[..., list[str]]
SIZES = {"train-cpu": "2", "train-memory": "4Gi", "train-gpu": "1", "serve-cpu": "500m", "serve-memory": "2Gi"}


def training_resources(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for obj in manifests(workflow):
        if obj["kind"] == "TrainJob":
            found.append(obj["spec"]["trainer"]["resourcesPerNode"])
        replicas = obj["spec"].get("pytorchReplicaSpecs") or obj["spec"].get("tfReplicaSpecs") or {}
        found += [r["template"]["spec"]["containers"][0].get("resources") for t, r in replicas.items() if t != "PS"]
    return found


def server_resources(workflow: dict[str, Any]) -> dict[str, Any]:
    [deployment] = [
        o for o in manifests(workflow) if o["kind"] == "Deployment" and "model-server" in o["metadata"]["name"]
    ]
    return deployment["spec"]["template"]["spec"]["containers"][0]["resources"]


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob", "trainjob"])
def test_argo_submit_sizes_the_training_pods_and_the_model_server(validate: Validate, job_kind: str) -> None:
    text = to_yaml(compile_pipeline(MODEL_TRAIN, {}, job_kind))
    workflow = argo_submit(text, {**SIZES, "tf-worker": "2"})
    assert_valid(workflow, validate)
    for resources in training_resources(workflow):
        assert resources == {
            "requests": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
            "limits": {"nvidia.com/gpu": "1"},
        }
    assert server_resources(workflow) == {"requests": {"cpu": "500m", "memory": "2Gi"}}


def test_the_defaults_request_a_cpu_and_a_gib_and_no_gpu(validate: Validate) -> None:
    workflow = argo_submit(to_yaml(compile_pipeline(MODEL_TRAIN, {}, "pytorchjob")), {})
    assert_valid(workflow, validate)
    [resources] = training_resources(workflow)
    assert resources["requests"] == {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "0"}


def test_a_hostile_size_at_argo_submit_stays_one_string_and_the_strict_checks_catch_it() -> None:
    workflow = argo_submit(to_yaml(compile_pipeline(MODEL_TRAIN, {}, "pytorchjob")), {"train-memory": '1Gi"\n  x: y'})
    [resources] = training_resources(workflow)
    assert resources["requests"]["memory"] == '1Gi"\n  x: y'
    assert any("is not a Kubernetes quantity" in p for m in manifests(workflow) for p in problems(m))


def test_trainflow_refuses_a_size_that_is_not_a_quantity_in_one_line() -> None:
    with pytest.raises(Exception, match="train-cpu '2 cores' is not a Kubernetes quantity"):
        compile_pipeline(MODEL_TRAIN, {"train-cpu": "2 cores"}, "pytorchjob")


def test_compile_time_resources_still_win_and_are_requests_and_limits() -> None:
    from trainflow.workflows.kubernetes.options import cluster_options

    options = cluster_options(resources=["train-model:cpu=4,memory=8Gi"])
    workflow = argo_submit(to_yaml(compile_pipeline(MODEL_TRAIN, {}, "pytorchjob", options=options)), SIZES)
    [resources] = training_resources(workflow)
    assert resources == {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}


def test_a_container_step_sized_by_a_parameter_is_refused_in_one_line() -> None:
    pipeline = Pipeline(
        name="crunch",
        params=(Param("cpu", "1", "CPU.", type="quantity"),),
        steps=(Command(name="work", argv=("echo", "hi"), resources=Resources(cpu=param("cpu"))),),
    ).validate()
    with pytest.raises(WorkflowError) as caught:
        compile_pipeline(pipeline, {})
    assert "size Train and Service steps only" in str(caught.value) and "\n" not in str(caught.value)
