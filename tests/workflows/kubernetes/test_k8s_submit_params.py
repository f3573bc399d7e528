"""`argo submit compiled.yaml -p NAME=VALUE` does what it says: the compiled YAML stays parameterised.

`argo_submit` below does what Argo does with a submitted workflow's text: `-p` overrides replace the
values under spec.arguments.parameters (an unknown name is refused), `--name` replaces metadata.name,
then every `{{workflow.parameters.NAME}}`, `{{workflow.name}}` and `{{workflow.namespace}}` in the
workflow, including inside resource templates' manifests, is replaced by its value as plain text, and a
template's `{{inputs.parameters.NAME}}` by the value its caller passes (here: sample runtime values);
an expression tag `{{=...}}` over known names is evaluated (tests/workflows/kubernetes/k8s_cluster_sim.py).
Runtime-only tags (`{{tasks...}}`, `{{steps...}}`, `{{item}}`, `{{workflow.status}}`) stay.
The results are validated against the official schemas and trainflow's strict checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
import yaml

from tests.workflows.kubernetes.k8s_cluster_sim import fill
from tests.workflows.kubernetes.test_k8s_manifests import all_schema_errors
from trainflow.workflows import MODEL_DEPLOY, MODEL_TRAIN
from trainflow.workflows.kubernetes import compile_pipeline, problems, to_yaml

Validate = Callable[..., list[str]]
RUNTIME_INPUTS = {
    "dataset-path": "/var/lib/trainflow/cache/datasets/mnist",
    "train-dir": "s3://bucket/unfinished/run/",
    "logs-dir": "s3://bucket/unfinished/run/logs/",
    "export-base": "s3://bucket/exported/run/",
}


def _fill(text: str, values: Mapping[str, str]) -> str:
    """Argo's tag replacement: known names become their value, other tags are left for later."""
    return fill(text, values, keep_unknown=True)


def _fill_all(obj: Any, values: Mapping[str, str]) -> Any:
    if isinstance(obj, dict):
        return {k: _fill_all(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill_all(v, values) for v in obj]
    return _fill(obj, values) if isinstance(obj, str) else obj


def argo_submit(text: str, params: Mapping[str, str], name: str | None = None) -> dict[str, Any]:
    """The workflow as Argo runs it after `argo submit FILE [--name NAME] -p K=V ...` (see the module docstring)."""
    workflow = yaml.safe_load(text)
    arguments = workflow["spec"]["arguments"]["parameters"]
    unknown = set(params) - {p["name"] for p in arguments}
    assert not unknown, f"argo would refuse -p {unknown}"
    for p in arguments:
        p["value"] = params.get(p["name"], p["value"])
    if name:
        workflow["metadata"]["name"] = name
    values = {f"workflow.parameters.{p['name']}": p["value"] for p in arguments}
    values["workflow.name"] = workflow["metadata"]["name"]
    values["workflow.namespace"] = workflow["metadata"]["namespace"]
    templates = []
    for template in _fill_all(workflow["spec"]["templates"], values):
        inputs = {f"inputs.parameters.{p['name']}": RUNTIME_INPUTS.get(p["name"], "x") for p in _inputs(template)}
        templates.append(_fill_all(template, {**values, **inputs}))
    workflow["spec"] = {**_fill_all(workflow["spec"], values), "templates": templates}
    assert "{{workflow.parameters." not in yaml.safe_dump(workflow), "a parameter Argo cannot resolve"
    return workflow


def _inputs(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(template.get("inputs", {}).get("parameters", []))


def manifests(workflow: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The objects the resource templates create, parsed from their (filled-in) manifest text."""
    found = [yaml.safe_load(t["resource"]["manifest"]) for t in workflow["spec"]["templates"] if "resource" in t]
    return [m for m in found if "spec" in m]


def one(workflow: Mapping[str, Any], kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [m for m in manifests(workflow) if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    return found


def compiled_text(pipeline: Any, job_kind: str = "pytorchjob", **params: str) -> str:
    return to_yaml(compile_pipeline(pipeline, params, job_kind))


def assert_valid(workflow: dict[str, Any], validate: Validate) -> None:
    assert all_schema_errors(workflow, validate) == []
    assert problems(workflow) == []
    for manifest in manifests(workflow):
        assert problems(manifest) == []


@pytest.mark.parametrize("workers", ["1", "2", "5"])
def test_argo_submit_tf_worker_sizes_the_pytorchjob(validate: Validate, workers: str) -> None:
    text = compiled_text(MODEL_TRAIN)  # compiled with the defaults: tf-worker 1
    workflow = argo_submit(text, {"tf-worker": workers})
    assert_valid(workflow, validate)
    job = one(workflow, "PyTorchJob")
    assert job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == int(workers)
    elastic = job["spec"]["elasticPolicy"]
    assert elastic["minReplicas"] == elastic["maxReplicas"] == int(workers)
    train = next(t for t in workflow["spec"]["templates"] if t["name"] == "train-model-job")
    assert train["resource"]["successCondition"] == f"status.replicaStatuses.Worker.succeeded == {workers}"


@pytest.mark.parametrize(("workers", "ps"), [("1", "0"), ("2", "1"), ("5", "2")])
def test_argo_submit_tf_worker_and_tf_ps_size_the_tfjob(validate: Validate, workers: str, ps: str) -> None:
    text = compiled_text(MODEL_TRAIN, "tfjob")
    workflow = argo_submit(text, {"tf-worker": workers, "tf-ps": ps})
    assert_valid(workflow, validate)
    replicas = one(workflow, "TFJob")["spec"]["tfReplicaSpecs"]
    assert {t: r["replicas"] for t, r in replicas.items()} == {"Worker": int(workers), "PS": int(ps)}


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_argo_submit_renames_and_moves_every_object_and_swaps_images_service_type_and_secret(
    validate: Validate, job_kind: str
) -> None:
    text = compiled_text(MODEL_TRAIN, job_kind)
    given = {
        "job-name": "nightly-42",
        "namespace": "team-ml",
        "tf-worker": "2",
        "tf-model-image": "registry.example.com/ml/trainflow:dev",
        "tf-serving-image": "registry.example.com/ml/server:dev",
        "model-serving-servicetype": "NodePort",
        "aws-secret": "team-s3",
        "model-train-steps": "500",
        "model-batch-size": "64",
    }
    workflow = argo_submit(text, given, name="nightly-42")
    assert_valid(workflow, validate)
    objects = manifests(workflow)
    assert {o["metadata"]["namespace"] for o in objects} == {"team-ml"}
    kind = "PyTorchJob" if job_kind == "pytorchjob" else "TFJob"
    job = one(workflow, kind, "nightly-42")
    assert {(o["kind"], o["metadata"]["name"]) for o in objects} >= {
        ("Deployment", "nightly-42-tensorboard"),
        ("Deployment", "nightly-42-model-server"),
        ("Service", "nightly-42-model-server"),
    }
    assert {o["metadata"]["labels"].get("trainflow.io/workflow") for o in objects} == {"nightly-42", None}  # None: PVC
    assert one(workflow, "Service", "nightly-42-model-server")["spec"]["type"] == "NodePort"
    server = one(workflow, "Deployment", "nightly-42-model-server")["spec"]["template"]["spec"]["containers"][0]
    assert server["image"] == "registry.example.com/ml/server:dev"
    replicas = job["spec"]["pytorchReplicaSpecs" if job_kind == "pytorchjob" else "tfReplicaSpecs"]
    trainer = replicas["Worker"]["template"]["spec"]["containers"][0]
    assert trainer["image"] == "registry.example.com/ml/trainflow:dev"
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in trainer["env"] if "valueFrom" in e} == {"team-s3"}
    args = trainer["args"]
    assert args[args.index("--train-steps") + 1] == "500" and args[args.index("--batch-size") + 1] == "64"
    deleted = next(t for t in workflow["spec"]["templates"] if t["name"] == "delete-train-model")
    assert yaml.safe_load(deleted["resource"]["manifest"])["metadata"] == {"name": "nightly-42", "namespace": "team-ml"}
    info = next(t for t in workflow["spec"]["templates"] if t["name"] == "get-workflow-info")["container"]["args"]
    assert info[info.index("--job-name") + 1] == "nightly-42"  # the run's paths follow the name too


def test_argo_submit_of_model_deploy_serves_another_workflow_in_another_namespace(validate: Validate) -> None:
    text = to_yaml(compile_pipeline(MODEL_DEPLOY, {"workflow": "myjob"}))
    workflow = argo_submit(text, {"workflow": "nightly-42", "namespace": "team-ml"}, name="nightly-42-deploy")
    assert_valid(workflow, validate)
    assert one(workflow, "Deployment")["metadata"] == {
        "name": "nightly-42-deploy-model-server",
        "namespace": "team-ml",
        "labels": {
            "app.kubernetes.io/managed-by": "trainflow",
            "trainflow.io/workflow": "nightly-42-deploy",
            "trainflow.io/step": "serve-model",
            "trainflow.io/serves": "model",
        },
    }


def test_replica_counts_are_whole_number_expressions_and_flags_json_quoted_strings() -> None:
    text = compiled_text(MODEL_TRAIN, "tfjob")
    manifest = next(
        t["resource"]["manifest"] for t in yaml.safe_load(text)["spec"]["templates"] if t["name"] == "train-model-job"
    )
    assert "replicas: {{=asInt(workflow.parameters['tf-worker'])}}\n" in manifest
    assert "replicas: {{=asInt(workflow.parameters['tf-ps'])}}\n" in manifest
    assert "- {{=toJson(workflow.parameters['tf-worker'])}}\n" in manifest  # a flag's value stays a string
