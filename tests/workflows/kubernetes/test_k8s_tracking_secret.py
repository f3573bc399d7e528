"""`-p mlflow-secret=NAME`: every pod of a compiled workflow (step containers, training job pods) reads MLflow's
tracking URI and credentials from that Secret, never inline; the output passes the schemas and the strict checks."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.workflows.kubernetes.test_k8s_manifests import Validate, all_schema_errors, by_kind, compiled, template
from trainflow.workflows.kubernetes import compile_pipeline, problems, to_yaml
from trainflow.workflows.kubernetes.tracking_env import VARS

MLFLOW_VARS = set(VARS)


def tracking_refs(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if e["name"] in MLFLOW_VARS}


def pod_containers(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step container and every container of every training job's pods."""
    found = [t["container"] for t in workflow["spec"]["templates"] if "container" in t]
    for kind in ("PyTorchJob", "TFJob"):
        for job in by_kind(workflow, kind):
            replicas = job["spec"].get("pytorchReplicaSpecs") or job["spec"].get("tfReplicaSpecs")
            found += [c for r in replicas.values() for c in r["template"]["spec"]["containers"]]
    return found


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_every_pod_reads_the_tracking_uri_and_credentials_from_the_secret(
    validate: Validate, job_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:pass-that-must-not-leak@mlflow:5000")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "token-that-must-not-leak")
    workflow = compiled(job_kind, **{"mlflow-secret": "team-mlflow", "tf-worker": "2"})
    text = to_yaml([workflow])
    assert "must-not-leak" not in text and "mlflow:5000" not in text
    containers = pod_containers(workflow)
    assert len(containers) > 3 and any(c["name"] in ("pytorch", "tensorflow") for c in containers)
    for container in containers:
        refs = tracking_refs(container)
        assert set(refs) == MLFLOW_VARS, container["name"]
        assert {r["key"] for r in refs.values()} == MLFLOW_VARS  # the Secret's keys are the variables' names
        # a step container names the parameter, set at submit time; a job's pods (read back filled in) its value
        assert len({r["name"] for r in refs.values()}) == 1, container["name"]
        assert refs["MLFLOW_TRACKING_URI"]["name"] in ("{{workflow.parameters.mlflow-secret}}", "team-mlflow")
        assert "optional" not in refs["MLFLOW_TRACKING_URI"]  # a pod without the URI would track nowhere
        assert all(refs[v]["optional"] is True for v in MLFLOW_VARS - {"MLFLOW_TRACKING_URI"})
    assert {"name": "mlflow-secret", "value": "team-mlflow"} in yaml.safe_load(text)["spec"]["arguments"]["parameters"]
    assert all_schema_errors(workflow, validate) == []
    assert problems(workflow) == []


def test_without_the_secret_no_pod_gets_tracking_variables() -> None:
    assert all(tracking_refs(c) == {} for c in pod_containers(compiled()))


def test_a_tracking_credential_set_inline_is_a_strict_problem() -> None:
    workflow = compiled(**{"mlflow-secret": "team-mlflow"})
    container = template(workflow, "download-dataset")["container"]
    container["env"].append({"name": "MLFLOW_TRACKING_PASSWORD", "value": "hunter2"})
    assert any("MLFLOW_TRACKING_PASSWORD is inline" in p for p in problems(workflow))


def test_a_bad_secret_name_is_refused_at_compile_time() -> None:
    from trainflow.workflows import MODEL_TRAIN
    from trainflow.workflows.errors import WorkflowError

    with pytest.raises(WorkflowError, match="mlflow-secret") as raised:
        compile_pipeline(MODEL_TRAIN, {"mlflow-secret": "Bad_Name; rm -rf /"}, "pytorchjob")
    assert "\n" not in str(raised.value)


def test_register_model_on_the_cluster_needs_the_mlflow_secret_not_a_local_uri_fake_k8s_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.workflows.kubernetes.fake_cluster import FakeCluster
    from trainflow.tracking.errors import TrackingError
    from trainflow.workflows import MODEL_TRAIN
    from trainflow.workflows.kubernetes.backend import KubernetesBackend

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cluster = FakeCluster()
    backend = KubernetesBackend(namespace="ml", api=cluster.api())
    with pytest.raises(TrackingError, match="MLFLOW_TRACKING_URI"):
        backend.submit(MODEL_TRAIN, {"job-name": "run1", "register-model": "mnist"})
    assert cluster.workflows == {}
    values = {"job-name": "run2", "register-model": "mnist", "mlflow-secret": "team-mlflow"}
    backend.submit(MODEL_TRAIN, values)  # the pods register through the Secret's server
    created = cluster.workflows[("ml", "run2")]
    assert problems(created) == []
