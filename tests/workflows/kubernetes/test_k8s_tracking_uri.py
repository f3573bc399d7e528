"""`-p mlflow-tracking-uri=` and `-p mlflow-experiment=` on a cluster: every pod gets them as MLFLOW_TRACKING_URI and
MLFLOW_EXPERIMENT_NAME (data Argo fills in, JSON-quoted in a manifest), credentials only from the Secret, and the
compiled output passes the schemas and the strict checks."""

from __future__ import annotations

from typing import Any

import pytest

from tests.workflows.kubernetes.test_k8s_manifests import Validate, all_schema_errors, compiled, template
from tests.workflows.kubernetes.test_k8s_tracking_secret import pod_containers
from trainflow.workflows import MODEL_DEPLOY, MODEL_TRAIN
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import compile_pipeline, problems, to_yaml
from trainflow.workflows.kubernetes.tracking_env import CREDENTIAL_VARS

URI = "http://mlflow.mlflow.svc:5000"
PLACEHOLDER = "{{workflow.parameters.mlflow-tracking-uri}}"


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", []) if e["name"].startswith("MLFLOW_")}


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_every_pod_gets_the_tracking_uri_and_experiment_parameters(validate: Validate, job_kind: str) -> None:
    workflow = compiled(job_kind, **{"mlflow-tracking-uri": URI, "mlflow-experiment": "team exp", "tf-worker": "2"})
    containers = pod_containers(workflow)
    assert len(containers) > 3 and any(c["name"] in ("pytorch", "tensorflow") for c in containers)
    for container in containers:
        env = env_of(container)
        assert set(env) == {"MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"}, container["name"]
        # a step container names the parameter, set at submit time; a job's pods (read back filled in) its value
        assert env["MLFLOW_TRACKING_URI"]["value"] in (PLACEHOLDER, URI)
        assert env["MLFLOW_EXPERIMENT_NAME"]["value"] in ("{{workflow.parameters.mlflow-experiment}}", "team exp")
    assert all_schema_errors(workflow, validate) == []
    assert problems(workflow) == []


def test_with_the_secret_too_the_parameter_gives_the_uri_and_the_secret_the_credentials(validate: Validate) -> None:
    workflow = compiled(**{"mlflow-tracking-uri": URI, "mlflow-secret": "team-mlflow"})
    for container in pod_containers(workflow):
        env = env_of(container)
        assert env["MLFLOW_TRACKING_URI"]["value"] in (PLACEHOLDER, URI)  # the parameter wins over the Secret's URI
        assert "valueFrom" not in env["MLFLOW_TRACKING_URI"]
        for var in CREDENTIAL_VARS:
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert ref["key"] == var and ref["optional"] is True
    assert all_schema_errors(workflow, validate) == []
    assert problems(workflow) == []


def test_without_the_parameter_or_secret_no_pod_gets_a_tracking_variable() -> None:
    assert all(env_of(c) == {} for c in pod_containers(compiled(**{"mlflow-experiment": "alone"})))


@pytest.mark.parametrize(
    "uri",
    [
        'http://h:5000/"\n        securityContext: {privileged: true}',
        "http://h:5000/x'}}{{workflow.parameters.aws-secret",
        "http://user:pass@h:5000",
        "gopher://h:70",
    ],
)
def test_a_hostile_or_credentialed_uri_is_refused_at_compile_time(uri: str) -> None:
    with pytest.raises(WorkflowError, match="mlflow-tracking-uri") as raised:
        compile_pipeline(MODEL_TRAIN, {"mlflow-tracking-uri": uri}, "pytorchjob")
    assert "\n" not in str(raised.value) and "pass@" not in str(raised.value)


def test_a_uri_with_credentials_set_inline_is_a_strict_problem() -> None:
    workflow = compiled(**{"mlflow-tracking-uri": URI})
    container = template(workflow, "download-dataset")["container"]
    [entry] = [e for e in container["env"] if e["name"] == "MLFLOW_TRACKING_URI"]
    entry["value"] = "http://user:hunter2@mlflow:5000"
    assert any("MLFLOW_TRACKING_URI holds a user name or password" in p for p in problems(workflow))


def test_model_deploy_from_the_registry_compiles_valid(validate: Validate) -> None:
    values = {"workflow": "champion", "model-uri": "models:/mnist@champion", "mlflow-tracking-uri": URI}
    [workflow] = compile_pipeline(MODEL_DEPLOY, values, "pytorchjob")
    text = to_yaml([workflow])
    assert "--model-uri" in text and "toJson(workflow.parameters['model-uri'])" in text
    assert all_schema_errors(workflow, validate) == []
    assert problems(workflow) == []


def test_model_deploy_from_the_registry_on_the_cluster_fake_k8s_api(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.workflows.kubernetes.fake_cluster import FakeCluster
    from trainflow.tracking.errors import TrackingError
    from trainflow.workflows.kubernetes.backend import KubernetesBackend

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cluster = FakeCluster()
    backend = KubernetesBackend(namespace="ml", api=cluster.api())
    values = {"workflow": "champion", "model-uri": "models:/mnist@champion"}
    with pytest.raises(TrackingError, match="no tracking server is set"):
        backend.submit(MODEL_DEPLOY, values)
    assert cluster.workflows == {}
    backend.submit(MODEL_DEPLOY, {**values, "mlflow-tracking-uri": URI})  # the pods' address: not asked from here
    created = cluster.workflows[("ml", "champion-deploy")]
    assert problems(created) == []
