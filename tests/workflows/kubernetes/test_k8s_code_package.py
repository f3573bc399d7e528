"""A compiled workflow with a code package: every step's container and every training pod is told its URL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.workflows.kubernetes.test_k8s_submit_params import argo_submit, manifests
from trainflow.workflows import MODEL_TRAIN
from trainflow.workflows.code_packages import CODE_ENV
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import compile_pipeline, problems, to_yaml
from trainflow.workflows.kubernetes.options import cluster_options

Validate = Callable[..., list[str]]
PACKAGE = f"s3://team-bucket/artifacts/code/{'ab' * 32}.tar.gz"


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def containers(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    found = [t["container"] for t in workflow["spec"]["templates"] if "container" in t]
    for obj in manifests(workflow):
        if obj["kind"] == "TrainJob":
            found.append(obj["spec"]["trainer"])
        replicas = obj["spec"].get("pytorchReplicaSpecs") or obj["spec"].get("tfReplicaSpecs") or {}
        found += [c for r in replicas.values() for c in r["template"]["spec"]["containers"]]
        if obj["kind"] == "Deployment":
            found += obj["spec"]["template"]["spec"]["containers"]
    return found


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob", "trainjob"])
def test_every_container_and_training_pod_fetches_the_code_package(validate: Validate, job_kind: str) -> None:
    options = cluster_options(code_package=PACKAGE)
    workflow = argo_submit(to_yaml(compile_pipeline(MODEL_TRAIN, {}, job_kind, options=options)), {"tf-worker": "2"})
    found = containers(workflow)
    assert len(found) >= 5
    assert {env_of(c).get(CODE_ENV) for c in found} == {PACKAGE}
    assert problems(workflow) == [] and validate(workflow) == []


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/code/latest.tar.gz",  # no digest: nothing to verify
        f"/home/me/code/{'ab' * 32}.tar.gz",  # a pod cannot read this machine's files
        f"s3://bucket/code/x\n{'ab' * 32}.tar.gz",
    ],
)
def test_a_package_url_a_pod_cannot_fetch_or_verify_is_refused_in_one_line(url: str) -> None:
    with pytest.raises(WorkflowError) as caught:
        cluster_options(code_package=url)
    assert "\n" not in str(caught.value).replace(url, "")
