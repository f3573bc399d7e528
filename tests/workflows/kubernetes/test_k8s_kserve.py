"""`--kserve serve-model`: the model server as a KServe InferenceService (a V2 custom predictor), schema-checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from tests.workflows.kubernetes.test_k8s_manifests import all_schema_errors, by_kind, template
from tests.workflows.kubernetes.test_k8s_submit_params import argo_submit, manifests
from trainflow.cli.main import cli
from trainflow.workflows import MODEL_DEPLOY, MODEL_TRAIN, WorkflowError
from trainflow.workflows.kubernetes import compile_pipeline, compile_rbac, problems, to_yaml
from trainflow.workflows.kubernetes.options import cluster_options

Validate = Callable[..., list[str]]


def compiled(pipeline: Any = MODEL_TRAIN, params: dict[str, str] | None = None, **options: Any) -> dict[str, Any]:
    [workflow] = compile_pipeline(pipeline, params or {}, options=cluster_options(kserve=["serve-model"], **options))
    return workflow


def isvc_errors(isvc: dict[str, Any], validate: Validate) -> list[str]:
    predictor = isvc["spec"]["predictor"]
    return validate(isvc) + [e for c in predictor["containers"] for e in validate(c, "Container")]


def test_the_model_server_becomes_an_inference_service_with_a_v2_custom_predictor(validate: Validate) -> None:
    workflow = compiled(replicas=["serve-model=2"], tolerations=["nvidia.com/gpu:NoSchedule"])
    assert all_schema_errors(workflow, validate) == [] and problems(workflow) == []
    [isvc] = by_kind(workflow, "InferenceService")
    assert isvc_errors(isvc, validate) == []
    assert isvc["metadata"]["name"] == "myjob-model-server"
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] == 2
    assert predictor["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    [container] = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert container["ports"] == [{"name": "http1", "containerPort": 8501, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8501}
    assert container["command"] == ["trainflow", "step", "serve-model"]
    assert predictor["volumes"][0]["persistentVolumeClaim"]["claimName"] == "trainflow-cache"
    # The step succeeds once KServe reports the model loaded; nothing else serves it.
    resource = template(workflow, "serve-model")["resource"]
    assert resource["successCondition"] == "status.modelStatus.states.activeModelState == Loaded"
    assert [d["metadata"]["name"] for d in by_kind(workflow, "Deployment")] == ["myjob-tensorboard"]
    assert [s["metadata"]["name"] for s in by_kind(workflow, "Service")] == ["myjob-tensorboard"]


def test_model_deploy_as_an_inference_service_validates_after_argo_submit(validate: Validate) -> None:
    text = to_yaml([compiled(MODEL_DEPLOY, {"workflow": "myjob"})])
    workflow = argo_submit(text, {"workflow": "nightly-42", "namespace": "team-ml"}, name="nightly-42-deploy")
    assert all_schema_errors(workflow, validate) == [] and problems(workflow) == []
    [isvc] = [m for m in manifests(workflow) if m["kind"] == "InferenceService"]
    assert isvc_errors(isvc, validate) == []
    assert (isvc["metadata"]["name"], isvc["metadata"]["namespace"]) == ("nightly-42-deploy-model-server", "team-ml")


def test_a_name_too_long_for_the_predictor_revision_fails_compile_with_one_line() -> None:
    with pytest.raises(WorkflowError) as caught:
        compiled(params={"job-name": "a" * 40})
    assert "predictor revision name (name too long?)" in str(caught.value) and "\n" not in str(caught.value)


def test_rbac_lets_the_workflow_manage_inference_services(validate: Validate) -> None:
    objects = compile_rbac("ml")
    assert [e for o in objects for e in validate(o)] == []
    assert any("inferenceservices" in rule["resources"] for rule in objects[1]["rules"])


def test_kserve_for_a_step_that_is_not_a_service_is_one_error_line() -> None:
    result = CliRunner().invoke(cli, ["compile", "model-train", "--kserve", "download-dataset"])
    assert result.exit_code == 2
    assert result.output.strip().startswith(
        "error: --kserve names 'download-dataset', which is not a service step of model-train"
    )
