"""`--job-kind trainjob`: a Train step as a Kubeflow Trainer v2 TrainJob, valid after Argo's substitution.

Each compiled workflow is put through `argo_submit` (what Argo does with `-p` values, expressions filled)
and then validated: the Argo Workflow schema, the TrainJob CRD schema of Trainer v2.3.0, the strict
checks (unknown fields, names the JobSet derives, the torch runtime's reserved env) and the credential check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.workflows.kubernetes.test_k8s_submit_params import argo_submit, manifests
from trainflow.pipelines import Call, Command, Param, Pipeline, Train, output, param
from trainflow.workflows import MODEL_TRAIN
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import compile_pipeline, compile_rbac, problems, to_yaml
from trainflow.workflows.kubernetes.options import cache_volume, cluster_options

Validate = Callable[..., list[str]]


def two_trainers() -> Pipeline:
    """A user's pipeline: prepare, two Train steps (a function and a command), a Call reading both."""
    return Pipeline(
        name="two-fits",
        name_param="run",
        params=(
            Param("run", "two-fits", "Names the run."),
            Param("workers", 1, "Training nodes.", type="int", minimum=1),
            Param("runtime", "torch-distributed", "The ClusterTrainingRuntime.", type="training-runtime"),
        ),
        steps=(
            Command(name="prepare", argv=("echo", "ready"), outputs=("where",)),
            Train(
                name="fit-small",
                function="mycode.fit:small",
                workers=param("workers"),
                inputs=(("where", output("prepare", "where")),),
                outputs=("loss",),
                kube_name="{workflow}-small",
            ),
            Train(
                name="fit-big",
                workers=param("workers"),
                argv=("trainflow", "step", "train-model", "--train-steps", "20"),
                kube_name="{workflow}-big",
            ),
            Call(name="report", function="mycode.report:compare", inputs=(("small", output("fit-small", "loss")),)),
        ),
    ).validate()


def submitted(pipeline: Pipeline, params: dict[str, str], **given: str) -> dict[str, Any]:
    text = to_yaml(compile_pipeline(pipeline, params, "trainjob"))
    return argo_submit(text, given)


def trainjobs(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in manifests(workflow) if m["kind"] == "TrainJob"]


def assert_valid(workflow: dict[str, Any], validate: Validate) -> None:
    errors = validate(workflow)
    for template in workflow["spec"]["templates"]:
        if "container" in template:
            errors += validate(template["container"], "Container")
    for manifest in manifests(workflow):
        errors += validate(manifest)
        assert problems(manifest) == []
    assert errors == []
    assert problems(workflow) == []
    assert "AWS_SECRET_ACCESS_KEY\n  value" not in yaml.safe_dump(workflow)


@pytest.mark.parametrize("workers", ["1", "2", "5"])
def test_model_train_trainjob_is_valid_and_sized_by_tf_worker_after_argo_submit(
    validate: Validate, workers: str
) -> None:
    workflow = submitted(MODEL_TRAIN, {}, **{"tf-worker": workers})
    assert_valid(workflow, validate)
    [job] = trainjobs(workflow)
    trainer = job["spec"]["trainer"]
    assert job["apiVersion"] == "trainer.kubeflow.org/v1alpha1"
    assert job["spec"]["runtimeRef"] == {"name": "torch-distributed"}
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (int(workers), 1)
    assert trainer["command"] == ["trainflow", "step", "train-model"]
    assert not [e for e in trainer["env"] if e["name"].startswith("PET_")]
    secret_refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in trainer["env"] if "valueFrom" in e]
    assert secret_refs == ["aws-creds", "aws-creds"]


@pytest.mark.parametrize("workers", ["1", "2", "5"])
def test_user_pipeline_with_two_train_steps_is_two_valid_trainjobs(validate: Validate, workers: str) -> None:
    workflow = submitted(two_trainers(), {}, workers=workers, runtime="my-torch")
    assert_valid(workflow, validate)
    jobs = {j["metadata"]["name"]: j for j in trainjobs(workflow)}
    assert sorted(jobs) == ["two-fits-big", "two-fits-small"]
    for job in jobs.values():
        assert job["spec"]["trainer"]["numNodes"] == int(workers)
        assert job["spec"]["runtimeRef"] == {"name": "my-torch"}


def test_argo_submit_training_runtime_names_another_runtime_and_a_hostile_one_stays_data(validate: Validate) -> None:
    [job] = trainjobs(submitted(MODEL_TRAIN, {}, **{"training-runtime": "torch-gpu"}))
    assert job["spec"]["runtimeRef"] == {"name": "torch-gpu"}
    hostile = 'x"\n  privileged: true'
    [job] = trainjobs(submitted(MODEL_TRAIN, {}, **{"training-runtime": hostile}))
    assert job["spec"]["runtimeRef"] == {"name": hostile}  # one string, no new key


def test_the_dataset_cache_is_mounted_in_the_runtimes_trainer_container_by_a_runtime_patch() -> None:
    [job] = trainjobs(submitted(MODEL_TRAIN, {}))
    [patch] = job["spec"]["runtimePatches"]
    [node] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = node["template"]["spec"]["template"]["spec"]
    assert node["name"] == "node"
    assert pod["containers"] == [
        {"name": "node", "volumeMounts": [{"name": "trainflow-cache", "mountPath": "/var/lib/trainflow"}]}
    ]
    assert pod["volumes"] == [{"name": "trainflow-cache", "persistentVolumeClaim": {"claimName": "trainflow-cache"}}]
    env = {e["name"]: e.get("value") for e in job["spec"]["trainer"]["env"]}
    assert env["TRAINFLOW_HOME"] == "/var/lib/trainflow"


def test_the_step_creates_the_trainjob_then_waits_on_its_jobset_and_the_exit_handler_deletes_it() -> None:
    workflow = submitted(MODEL_TRAIN, {}, **{"job-name": "nightly"})
    templates = {t["name"]: t for t in workflow["spec"]["templates"]}
    group = templates["train-model-job"]
    assert [[c["template"] for c in s] for s in group["steps"]] == [
        ["train-model-job-create"],
        ["train-model-job-wait"],
    ]
    assert templates["train-model-job-create"]["resource"]["action"] == "create"
    wait = templates["train-model-job-wait"]["resource"]
    assert yaml.safe_load(wait["manifest"])["kind"] == "JobSet"
    assert yaml.safe_load(wait["manifest"])["metadata"]["name"] == "nightly"
    assert (wait["successCondition"], wait["failureCondition"]) == (
        "status.terminalState == Completed",
        "status.terminalState == Failed",
    )
    delete = yaml.safe_load(templates["delete-train-model"]["resource"]["manifest"])
    assert (delete["kind"], delete["metadata"]["name"]) == ("TrainJob", "nightly")
    assert workflow["spec"]["onExit"] == "cleanup"


def test_rbac_grants_trainjobs_and_reading_jobsets() -> None:
    role = next(o for o in compile_rbac("team") if o["kind"] == "Role")
    grants = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert {("trainer.kubeflow.org", "trainjobs"), ("jobset.x-k8s.io", "jobsets")} <= grants


def test_a_job_name_too_long_for_the_jobsets_pod_host_names_is_refused_at_compile() -> None:
    with pytest.raises(WorkflowError, match="pod host name"):
        # a-x49-small is a valid name (55 characters); its fifth pod's host a-x49-small-node-0-4 is not
        compile_pipeline(two_trainers(), {"run": "a" * 49, "workers": "5"}, "trainjob")


def test_per_node_cache_is_refused_with_trainjob_in_one_line() -> None:
    options = cluster_options(cache=cache_volume(mode="per-node"))
    with pytest.raises(WorkflowError) as caught:
        compile_pipeline(MODEL_TRAIN, {}, "trainjob", options=options)
    assert "needs the shared cache" in str(caught.value) and "\n" not in str(caught.value)


def test_a_hostile_runtime_name_is_refused_by_its_type() -> None:
    with pytest.raises(Exception, match="runtime"):
        compile_pipeline(two_trainers(), {"runtime": "x\n  privileged: true"}, "trainjob")


def test_the_cli_offers_every_job_kind_the_compiler_makes() -> None:
    from trainflow.cli.options import JOB_KINDS as OFFERED
    from trainflow.workflows.kubernetes.resources import JOB_KINDS

    assert OFFERED == JOB_KINDS
