"""Compiled manifests validate against the official schemas and say what the pipeline needs on a cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from trainflow.workflows import MODEL_DEPLOY, MODEL_TRAIN
from trainflow.workflows.kubernetes import compile_pipeline, compile_rbac, embedded_manifests, problems, to_yaml

Validate = Callable[..., list[str]]


def compiled(job_kind: str = "pytorchjob", **params: str) -> dict[str, Any]:
    [workflow] = compile_pipeline(MODEL_TRAIN, params, job_kind)
    return workflow


def by_kind(workflow: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Objects of `kind` the workflow creates (not the exit handler's delete, which names the job only)."""
    return [m for m in embedded_manifests(workflow) if m["kind"] == kind and "spec" in m]


def template(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in workflow["spec"]["templates"] if t["name"] == name)


def all_schema_errors(workflow: dict[str, Any], validate: Validate) -> list[str]:
    """The workflow, each object it creates, and every pod template and container in them, each against its schema."""
    errors = validate(workflow)
    for t in workflow["spec"]["templates"]:
        if "container" in t:
            errors += validate(t["container"], "Container")
    for manifest in embedded_manifests(workflow):
        if manifest.get("spec") is None:  # the exit handler's delete names the job only
            continue
        errors += validate(manifest)
        replicas = manifest["spec"].get("pytorchReplicaSpecs") or manifest["spec"].get("tfReplicaSpecs") or {}
        errors += [e for r in replicas.values() for e in validate(r["template"], "PodTemplateSpec")]
    return errors


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
@pytest.mark.parametrize("serving", ["true", "false"])
def test_model_train_validates_against_argo_kubeflow_and_strict_core_schemas(
    validate: Validate, job_kind: str, serving: str
) -> None:
    workflow = compiled(job_kind, **{"model-serving": serving, "tf-worker": "3"})
    assert all_schema_errors(workflow, validate) == []
    assert problems(workflow) == []
    kinds = sorted(m["kind"] for m in embedded_manifests(workflow))
    job = "PyTorchJob" if job_kind == "pytorchjob" else "TFJob"
    servers = 2 if serving == "true" else 1
    assert kinds == sorted(["PersistentVolumeClaim", job, job, *["Deployment", "Service"] * servers])


def test_model_deploy_and_rbac_validate_against_the_schemas(validate: Validate) -> None:
    [workflow] = compile_pipeline(MODEL_DEPLOY, {"workflow": "myjob"})
    assert all_schema_errors(workflow, validate) == [] and problems(workflow) == []
    assert workflow["metadata"]["name"] == "myjob-deploy"
    assert [m["kind"] for m in by_kind(workflow, "Deployment")] == ["Deployment"]
    objects = compile_rbac("ml")
    assert [o["kind"] for o in objects] == ["ServiceAccount", "Role", "RoleBinding"]
    assert [e for o in objects for e in validate(o)] == []
    granted = {r for rule in objects[1]["rules"] for r in rule["resources"]}
    assert {"tfjobs", "pytorchjobs", "deployments", "services", "persistentvolumeclaims"} <= granted


def test_pytorchjob_is_tf_worker_workers_meeting_by_c10d_rendezvous_in_containers_named_pytorch() -> None:
    workflow = compiled("pytorchjob", **{"tf-worker": "3"})
    [job] = by_kind(workflow, "PyTorchJob")
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert {t: r["replicas"] for t, r in replicas.items()} == {"Worker": 3}
    elastic = job["spec"]["elasticPolicy"]
    assert (elastic["rdzvBackend"], elastic["minReplicas"], elastic["maxReplicas"]) == ("c10d", 3, 3)
    assert all(r["restartPolicy"] == "ExitCode" for r in replicas.values())
    assert job["spec"]["runPolicy"]["cleanPodPolicy"] == "Running"
    assert {c["name"] for r in replicas.values() for c in r["template"]["spec"]["containers"]} == {"pytorch"}
    resource = template(workflow, "train-model-job")["resource"]
    assert (
        resource["successCondition"]
        == "status.replicaStatuses.Worker.succeeded == {{=asInt(workflow.parameters['tf-worker'])}}"
    )
    [single] = by_kind(compiled("pytorchjob"), "PyTorchJob")
    assert single["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 1


def test_tfjob_has_tf_worker_workers_and_tf_ps_parameter_servers_in_containers_named_tensorflow() -> None:
    workflow = compiled("tfjob", **{"tf-worker": "3", "tf-ps": "2"})
    [job] = by_kind(workflow, "TFJob")
    replicas = job["spec"]["tfReplicaSpecs"]
    assert {t: r["replicas"] for t, r in replicas.items()} == {"Worker": 3, "PS": 2}
    assert {c["name"] for r in replicas.values() for c in r["template"]["spec"]["containers"]} == {"tensorflow"}
    resource = template(workflow, "train-model-job")["resource"]
    assert (
        resource["successCondition"]
        == "status.replicaStatuses.Worker.succeeded == {{=asInt(workflow.parameters['tf-worker'])}}"
    )
    assert resource["failureCondition"] == "status.replicaStatuses.Worker.failed > 0"
    [no_ps] = by_kind(compiled("tfjob", **{"tf-ps": "0"}), "TFJob")
    assert no_ps["spec"]["tfReplicaSpecs"]["PS"]["replicas"] == 0  # still a parameter: argo submit -p tf-ps=2


def test_model_serving_false_leaves_the_model_server_out() -> None:
    without = compiled(**{"model-serving": "false"})
    assert "serve-model" not in [t["name"] for t in without["spec"]["templates"]]
    assert [d["metadata"]["name"] for d in by_kind(without, "Deployment")] == ["myjob-tensorboard"]
    served = compiled(**{"model-serving-servicetype": "NodePort"})
    task = next(t for t in template(served, "model-train")["dag"]["tasks"] if t["name"] == "serve-model")
    assert task["when"] == "{{=sprig.lower(sprig.trim(workflow.parameters['model-serving'])) == 'true'}}"
    service = next(s for s in by_kind(served, "Service") if s["metadata"]["name"] == "myjob-model-server")
    assert service["spec"]["type"] == "NodePort"
    assert [p["port"] for p in service["spec"]["ports"]] == [8501, 9000]


def test_servers_are_ready_only_when_their_health_routes_answer() -> None:
    deployments = {d["metadata"]["name"]: d for d in by_kind(compiled(), "Deployment")}
    server = deployments["myjob-model-server"]["spec"]["template"]["spec"]["containers"][0]
    assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "rest"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "rest"}
    assert server["args"][-2:] == ["--host", "0.0.0.0"]  # reachable through the Service, not only on loopback
    applied = template(compiled(), "serve-model-deployment")["resource"]
    assert applied["successCondition"] == "status.readyReplicas > 0"  # the step succeeds once the server is ready
    board = deployments["myjob-tensorboard"]["spec"]["template"]["spec"]["containers"][0]
    assert board["readinessProbe"]["httpGet"] == {"path": "/", "port": "http"}


def test_dataset_cache_is_one_claim_every_run_reuses_and_every_step_mounts_as_trainflow_home() -> None:
    first, second = compiled(**{"job-name": "first"}), compiled(**{"job-name": "second"})
    [claim] = by_kind(first, "PersistentVolumeClaim")
    assert claim == by_kind(second, "PersistentVolumeClaim")[0]  # same claim: the second run downloads nothing
    assert template(first, "dataset-cache")["resource"]["action"] == "apply"  # created once, then left as is
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    download = template(first, "download-dataset")["container"]
    [job] = by_kind(first, "PyTorchJob")
    trainer = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
    for container in (download, trainer["containers"][0]):
        home = next(e["value"] for e in container["env"] if e["name"] == "TRAINFLOW_HOME")
        assert [m["mountPath"] for m in container["volumeMounts"]] == [home]
    assert trainer["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_s3_credentials_come_only_from_the_aws_creds_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLELEAK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-that-must-not-leak")
    text = to_yaml([compiled(**{"aws-endpoint-url": "http://minio:9000"})])
    assert "AKIAEXAMPLELEAK" not in text and "secret-that-must-not-leak" not in text
    download = template(yaml.safe_load(text), "download-dataset")["container"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in download["env"] if "valueFrom" in e}
    assert refs["AWS_ACCESS_KEY_ID"]["key"] == "awsAccessKeyID"
    assert refs["AWS_SECRET_ACCESS_KEY"]["key"] == "awsSecretAccessKey"
    # The Secret's name is the aws-secret parameter, set at submit time (default aws-creds).
    assert (
        refs["AWS_ACCESS_KEY_ID"]["name"]
        == refs["AWS_SECRET_ACCESS_KEY"]["name"]
        == "{{workflow.parameters.aws-secret}}"
    )
    assert {"name": "aws-secret", "value": "aws-creds"} in yaml.safe_load(text)["spec"]["arguments"]["parameters"]
    [job] = by_kind(compiled(**{"aws-secret": "team-s3"}), "PyTorchJob")
    trainer = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in trainer["env"] if "valueFrom" in e} == {"team-s3"}


def test_only_steps_that_can_fail_transiently_retry_and_only_on_transient_exit_codes() -> None:
    workflow = compiled()
    retrying = {t["name"]: t["retryStrategy"] for t in workflow["spec"]["templates"] if "retryStrategy" in t}
    assert sorted(retrying) == ["download-dataset", "export-model"]
    assert retrying["download-dataset"]["limit"] == "2"
    assert retrying["download-dataset"]["expression"] == "asInt(lastRetry.exitCode) >= 128"


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_the_exit_handler_deletes_the_training_job_and_the_one_shot_pods_whatever_the_outcome(job_kind: str) -> None:
    workflow = compiled(job_kind, **{"job-name": "run7", "namespace": "ml"})
    assert workflow["spec"]["onExit"] == "cleanup"
    [[call]] = template(workflow, "cleanup")["steps"]
    assert "when" not in call  # succeeded, failed or stopped alike
    delete = template(workflow, "delete-train-model")["resource"]
    [deleted] = [m for m in embedded_manifests(workflow) if "spec" not in m]
    assert delete["action"] == "delete" and delete["flags"] == ["--ignore-not-found"]
    assert (deleted["kind"], deleted["metadata"]) == (
        "PyTorchJob" if job_kind == "pytorchjob" else "TFJob",
        {"name": "run7", "namespace": "ml"},
    )
    # The workflow's own pods (download, info, export, the outputs reader) go once it ends; the delay keeps logs.
    assert workflow["spec"]["podGC"] == {"strategy": "OnWorkflowCompletion", "deleteDelayDuration": "10m"}
    # TensorBoard and the model server stay: nothing deletes a Deployment or a Service, and they are not the
    # workflow's pods (a Deployment owns them), so the pod GC leaves them.
    assert {m["kind"] for m in embedded_manifests(workflow) if "spec" not in m} == {deleted["kind"]}
    applied = [t for t in workflow["spec"]["templates"] if t.get("resource", {}).get("action") == "apply"]
    assert all("setOwnerReference" not in t["resource"] for t in applied)


def test_training_job_is_owned_by_the_workflow_and_services_outlive_it() -> None:
    workflow = compiled()
    assert template(workflow, "train-model-job")["resource"]["setOwnerReference"] is True
    assert "setOwnerReference" not in template(workflow, "serve-model-deployment")["resource"]
