"""Resources, GPUs, scheduling, pull secrets, server replicas and the cache volume: compile options, schema-checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests.workflows.kubernetes.k8s_cluster_sim import fill, workflow_values
from tests.workflows.kubernetes.test_k8s_manifests import all_schema_errors, by_kind, template
from trainflow.cli.main import cli
from trainflow.pipelines import Command, Pipeline, Resources
from trainflow.workflows import MODEL_TRAIN, WorkflowError
from trainflow.workflows.kubernetes import compile_pipeline, embedded_manifests, problems
from trainflow.workflows.kubernetes.options import cache_volume, cluster_options

Validate = Callable[..., list[str]]


def compiled(job_kind: str = "pytorchjob", params: dict[str, str] | None = None, **options: Any) -> dict[str, Any]:
    [workflow] = compile_pipeline(MODEL_TRAIN, params or {}, job_kind, options=cluster_options(**options))
    return workflow


def trainers(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Replica type -> its training container."""
    [job] = [m for m in by_kind(workflow, "PyTorchJob") + by_kind(workflow, "TFJob")]
    specs = job["spec"].get("pytorchReplicaSpecs") or job["spec"]["tfReplicaSpecs"]
    return {t: s["template"]["spec"]["containers"][0] for t, s in specs.items()}


def pod_specs(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pod spec the workflow's objects create (training replicas, Deployments)."""
    found = []
    for m in embedded_manifests(workflow):
        spec = m.get("spec") or {}
        replicas = spec.get("pytorchReplicaSpecs") or spec.get("tfReplicaSpecs") or {}
        found += [r["template"]["spec"] for r in replicas.values()]
        if m["kind"] == "Deployment":
            found.append(spec["template"]["spec"])
    return found


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_a_gpu_training_step_requests_nvidia_gpus_and_trains_with_nccl(validate: Validate, job_kind: str) -> None:
    workflow = compiled(job_kind, {"tf-ps": "1"}, resources=["train-model:cpu=4,memory=16Gi,gpu=2"])
    assert all_schema_errors(workflow, validate) == [] and problems(workflow) == []
    worker = trainers(workflow)["Worker"]
    assert worker["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
        "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
    }
    assert env(worker)["TRAINFLOW_DIST_BACKEND"] == "nccl"
    if job_kind == "tfjob":  # parameter servers do not train: no GPU, gloo
        ps = trainers(workflow)["PS"]
        assert "resources" not in ps and env(ps)["TRAINFLOW_DIST_BACKEND"] == "gloo"
    reader = template(workflow, "train-model-outputs")["container"]
    assert "resources" not in reader  # copying the outputs needs no GPU
    by_params = trainers(compiled(job_kind))["Worker"]  # model-train's train-cpu/-memory/-gpu, set at submit time
    assert set(by_params["resources"]["requests"]) == {"cpu", "memory", "nvidia.com/gpu"}
    assert set(by_params["resources"]["limits"]) == {"nvidia.com/gpu"}
    assert "TRAINFLOW_DIST_BACKEND" not in env(by_params)  # the GPU count is known at submit time: the trainer picks


def test_resources_declared_on_a_steps_spec_become_its_requests_and_limits(validate: Validate) -> None:
    pipeline = Pipeline(
        name="prep",
        params=(),
        steps=(Command(name="crunch", argv=("python", "-c", "pass"), resources=Resources(cpu="500m", memory="1Gi")),),
    ).validate()
    [workflow] = compile_pipeline(pipeline, {})
    assert all_schema_errors(workflow, validate) == [] and problems(workflow) == []
    assert template(workflow, "crunch")["container"]["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "500m", "memory": "1Gi"},
    }
    bad = Pipeline(
        name="prep", params=(), steps=(Command(name="crunch", argv=("true",), resources=Resources(cpu="lots")),)
    )
    with pytest.raises(WorkflowError, match="step crunch cpu 'lots' is not a Kubernetes quantity"):
        compile_pipeline(bad.validate(), {})


def test_node_selector_tolerations_pull_secrets_and_service_account_reach_every_pod(validate: Validate) -> None:
    workflow = compiled(
        node_selectors=["cloud.google.com/gke-accelerator=nvidia-l4"],
        tolerations=["nvidia.com/gpu:NoSchedule", "dedicated=ml:NoExecute", "spot"],
        image_pull_secrets=["regcred"],
        service_account="ml-runner",
        replicas=["serve-model=3"],
    )
    assert all_schema_errors(workflow, validate) == [] and problems(workflow) == []
    tolerations = [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute"},
        {"key": "spot", "operator": "Exists"},
    ]
    expected = {
        "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
        "tolerations": tolerations,
        "imagePullSecrets": [{"name": "regcred"}],
        "serviceAccountName": "ml-runner",
    }
    specs = pod_specs(workflow)
    assert len(specs) == 3  # the training replica, TensorBoard, the model server
    for spec in [*specs, workflow["spec"]]:  # the workflow's spec: Argo's own step pods
        assert {k: spec.get(k) for k in expected} == expected
    servers = {d["metadata"]["name"]: d["spec"]["replicas"] for d in by_kind(workflow, "Deployment")}
    assert servers == {"myjob-tensorboard": 1, "myjob-model-server": 3}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--resources", "train-model:gpu=-1"], "train-model gpu '-1' is not a GPU count"),
        (["--resources", "train-model:gpu=1.5"], "train-model gpu '1.5' is not a GPU count"),
        (["--resources", "train-model:cpu=lots"], "train-model cpu 'lots' is not a Kubernetes quantity"),
        (["--resources", "train-model:memory=4GB"], "train-model memory '4GB' is not a Kubernetes quantity"),
        (["--resources", "train-model:disk=1"], "'disk=1' is not cpu=.., memory=.. or gpu=.."),
        (["--resources", "no-such-step:cpu=1"], "--resources names step 'no-such-step', which model-train lacks"),
        (["--toleration", "bad key:NoSchedule"], "toleration 'bad key:NoSchedule' is not KEY[=VALUE][:EFFECT]"),
        (["--toleration", "gpu:Sometimes"], "toleration 'gpu:Sometimes' is not KEY[=VALUE][:EFFECT]"),
        (["--node-selector", "gpu"], "node selector 'gpu' is not KEY=VALUE"),
        (["--node-selector", "gpu=a b"], "node selector 'gpu=a b' is not KEY=VALUE"),
        (["--image-pull-secret", "Reg_Cred"], "image pull secret 'Reg_Cred' is not a valid name"),
        (["--service-account", "ML"], "service account 'ML' is not a valid name"),
        (["--replicas", "serve-model=0"], "replicas 'serve-model=0' must be STEP=N with N from 1 to 1000"),
        (["--replicas", "download-dataset=2"], "--replicas names 'download-dataset', which is not a service step"),
        (["--cache-size", "10 GB"], "cache size '10 GB' is not a Kubernetes quantity"),
        (["--cache-storage-class", "Fast!"], "storage class 'Fast!' is not a valid name"),
        (["--cache-host-path", "relative/dir"], "cache host path 'relative/dir' must be an absolute directory path"),
        (["--cache-host-path", "/var/../etc"], "cache host path '/var/../etc' must be an absolute directory path"),
        (["--kserve", "Serve_Model"], "--kserve step 'Serve_Model' is not a valid name"),
        (["-p", "aws-secret=team s3"], "parameter aws-secret 'team s3' is not a valid name"),
        (["-p", "tf-model-image="], "parameter tf-model-image '' is not an image reference"),
        (["-p", "tf-serving-image=Registry/ML:latest"], "parameter tf-serving-image 'Registry/ML:latest' is not an"),
    ],
)
def test_a_bad_cluster_flag_is_one_error_line_and_exit_2(flags: list[str], expected: str) -> None:
    result = CliRunner().invoke(cli, ["compile", "model-train", *flags])
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: ") and expected in line, line


def test_cluster_flags_on_the_local_backend_are_refused_with_one_line() -> None:
    result = CliRunner().invoke(cli, ["submit", "model-train", "--resources", "train-model:gpu=1"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: cluster flags (--resources, --toleration, --cache-*, ...) need --backend kubernetes"
    )


def test_compile_command_applies_the_flags(validate: Validate) -> None:
    result = CliRunner().invoke(
        cli, ["compile", "model-train", "--resources", "train-model:gpu=1", "--toleration", "nvidia.com/gpu:NoSchedule"]
    )
    assert result.exit_code == 0, result.output
    [workflow] = list(yaml.safe_load_all(result.output))
    assert all_schema_errors(workflow, validate) == []
    worker = trainers(workflow)["Worker"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_cache_options_are_checked_one_at_a_time() -> None:
    assert cache_volume(size="50Gi", access_mode="ReadWriteOnce", storage_class="fast.ssd").size == "50Gi"
    with pytest.raises(WorkflowError, match="cache mode 'nfs' is unknown"):
        cache_volume(mode="nfs")
    with pytest.raises(WorkflowError, match="cache access mode 'ReadOnlyMany' is unknown"):
        cache_volume(access_mode="ReadOnlyMany")  # steps write the cache


def test_the_shared_cache_claim_takes_its_storage_class_size_and_access_mode(validate: Validate) -> None:
    [default] = by_kind(compiled(), "PersistentVolumeClaim")
    assert default["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}}}
    cache = cache_volume(size="200Gi", access_mode="ReadWriteOnce", storage_class="premium-rwo")
    workflow = compiled(cache=cache)
    assert all_schema_errors(workflow, validate) == [] and problems(workflow) == []
    [claim] = by_kind(workflow, "PersistentVolumeClaim")
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "200Gi"}},
        "storageClassName": "premium-rwo",
    }


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_a_per_node_cache_is_a_host_directory_each_training_pod_syncs_on_its_own_node(
    validate: Validate, job_kind: str
) -> None:
    workflow = compiled(job_kind, {"tf-worker": "3"}, cache=cache_volume(mode="per-node", host_path="/mnt/tf-cache"))
    assert all_schema_errors(workflow, validate) == [] and problems(workflow) == []
    assert by_kind(workflow, "PersistentVolumeClaim") == []  # no claim, no RWX class needed
    assert "dataset-cache" not in [t["name"] for t in workflow["spec"]["templates"]]
    host = {"name": "trainflow-cache", "hostPath": {"path": "/mnt/tf-cache", "type": "DirectoryOrCreate"}}
    assert workflow["spec"]["volumes"] == [host]
    assert all(spec["volumes"] == [host] for spec in pod_specs(workflow))
    [job] = [m for m in embedded_manifests(workflow) if m["kind"] in ("PyTorchJob", "TFJob") and "spec" in m]
    replicas = job["spec"].get("pytorchReplicaSpecs") or job["spec"]["tfReplicaSpecs"]
    values = workflow_values(workflow)
    download = {
        k: fill(v, values) if isinstance(v, str) else v
        for k, v in template(workflow, "download-dataset")["container"].items()
    }
    download["args"] = [fill(a, values) for a in download["args"]]
    assert "initContainers" not in replicas.get("PS", {"template": {"spec": {}}})["template"]["spec"]  # reads no data
    [sync] = replicas["Worker"]["template"]["spec"]["initContainers"]
    # The very download the DAG ran, again on this pod's node (no bytes where the node's copy is current).
    assert (sync["command"], sync["args"], sync["image"]) == (
        download["command"],
        download["args"],
        download["image"],
    )
    assert sync["volumeMounts"] == download["volumeMounts"]
    # Nothing is shared between nodes: the training outputs are not read back through a volume.
    assert "train-model-outputs" not in [t["name"] for t in workflow["spec"]["templates"]]
    assert "TRAINFLOW_OUTPUTS" not in env(replicas["Worker"]["template"]["spec"]["containers"][0])


def test_per_node_cache_refuses_a_pipeline_that_reads_a_training_steps_outputs() -> None:
    from trainflow.pipelines import Train, output

    pipeline = Pipeline(
        name="fit-report",
        params=(),
        steps=(
            Train(name="fit", function="tests.fit:fit", outputs=("loss",)),
            Command(name="report", argv=("echo", output("fit", "loss"))),
        ),
    ).validate()
    [shared] = compile_pipeline(pipeline, {})
    assert problems(shared) == []
    per_node = cluster_options(cache=cache_volume(mode="per-node"))
    with pytest.raises(WorkflowError) as caught:
        compile_pipeline(pipeline, {}, options=per_node)
    assert str(caught.value) == (
        "--cache-mode per-node: step report reads the outputs of training step fit, which are not read back in "
        "this mode (nothing is shared between nodes): use --cache-mode shared"
    )
