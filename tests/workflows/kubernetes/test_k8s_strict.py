"""The strict checks catch what the CRD schemas let through: typos, bad enums, bad names, wrong containers, inline secrets."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from trainflow.workflows import MODEL_TRAIN, WorkflowError
from trainflow.workflows.kubernetes import compile_pipeline, problems, resources
from trainflow.workflows.kubernetes.render import complete_values, step_run


def job(kind: str = "pytorchjob") -> dict[str, Any]:
    values = complete_values(MODEL_TRAIN, {"tf-worker": "2"})
    step = MODEL_TRAIN.step("train-model")
    return resources.training_job(kind, resources.Target("myjob", values), step_run(step), step)


def replica(obj: dict[str, Any], kind: str = "pytorchjob") -> dict[str, Any]:
    key = "pytorchReplicaSpecs" if kind == "pytorchjob" else "tfReplicaSpecs"
    return obj["spec"][key]["Worker"]


def test_generated_jobs_have_no_problems() -> None:
    assert problems(job("pytorchjob")) == [] and problems(job("tfjob")) == []


def test_misspelled_field_that_the_crd_schema_would_accept_is_reported() -> None:
    bad = job()
    replica(bad)["restartpolicy"] = replica(bad).pop("restartPolicy")
    assert problems(bad) == ["PyTorchJob myjob: spec.pytorchReplicaSpecs.Worker.restartpolicy: unknown field"]


@pytest.mark.parametrize(("field", "value"), [("restartPolicy", "OnExit"), ("cleanPodPolicy", "Some")])
def test_restart_and_clean_pod_policies_outside_their_enums_are_reported(field: str, value: str) -> None:
    bad = job("tfjob")
    target = replica(bad, "tfjob") if field == "restartPolicy" else bad["spec"]["runPolicy"]
    target[field] = value
    [problem] = problems(bad)
    assert f"'{value}' is not one of" in problem


def test_operator_container_must_be_named_pytorch_or_tensorflow() -> None:
    bad = job("tfjob")
    replica(bad, "tfjob")["template"]["spec"]["containers"][0]["name"] = "main"
    assert any("needs a container named 'tensorflow'" in p for p in problems(bad))


def test_inline_credentials_are_refused() -> None:
    bad = job()
    replica(bad)["template"]["spec"]["containers"][0]["env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "x"})
    assert any("credentials must come from a Secret" in p for p in problems(bad))


def test_a_typo_inside_an_embedded_manifest_is_found_through_the_workflow() -> None:
    [workflow] = compile_pipeline(MODEL_TRAIN, {})
    bad = copy.deepcopy(workflow)
    train = next(t for t in bad["spec"]["templates"] if t["name"] == "train-model-job")
    train["resource"]["manifest"] = train["resource"]["manifest"].replace("cleanPodPolicy", "cleanpodpolicy")
    assert problems(bad) == ["PyTorchJob myjob: spec.runPolicy.cleanpodpolicy: unknown field"]


@pytest.mark.parametrize("name", ["1abc", "a" * 51])
def test_job_names_that_make_invalid_service_names_fail_compile_with_one_line(name: str) -> None:
    with pytest.raises(WorkflowError) as caught:
        compile_pipeline(MODEL_TRAIN, {"job-name": name})
    message = str(caught.value)
    assert "\n" not in message and "is not a valid" in message and "check the parameters" in message


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"tf-worker": "0"}, "tf-worker must be at least 1"),
        ({"tf-ps": "-1"}, "tf-ps must be at least 0"),
        ({"model-serving": "maybe"}, "model-serving must be true or false"),
        ({"no-such": "1"}, "unknown parameter(s) no-such"),
        ({"model-serving-servicetype": "Public"}, "must be one of ClusterIP, NodePort, LoadBalancer, not 'Public'"),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_generated(params: dict[str, str], expected: str) -> None:
    with pytest.raises(WorkflowError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        compile_pipeline(MODEL_TRAIN, params)


def test_unknown_job_kind_is_refused() -> None:
    with pytest.raises(WorkflowError, match="unknown job kind 'mpijob'"):
        compile_pipeline(MODEL_TRAIN, {}, "mpijob")
