"""A `Train` step as a Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1) on a ClusterTrainingRuntime.

The runtime (by default `torch-distributed`) owns the pod shape: a JobSet whose replicated job and
trainer container are both named `node`. The TrainJob fills in what trainflow runs: `numNodes` pods
(from the step's `workers`, an `asInt` placeholder when a parameter gives it), one process per pod (the
launcher forks the local workers itself, as on a PyTorchJob), the image, command, args, env and the
resources per node. The torch plugin adds PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR
(`<job>-node-0-0.<job>`) and PET_MASTER_PORT (29400), which `training/cluster.py` reads.

The dataset cache is mounted as on the other kinds, through a runtime patch of the pod template (the
only way a TrainJob adds volumes): the download step fills the cache once and every later run reuses
it, which Trainer's dataset initializer (a fresh download into each job's own volume) cannot do.
A runtime patch may only add env and mounts to the runtime's own containers, so the per-node cache's
sync init containers cannot be added: that mode is refused with a one-line error.

Argo cannot wait on a TrainJob's conditions (a list: its success conditions are label selectors over
scalar fields), so the step creates the TrainJob, then waits on the JobSet the controller makes under
the same name, whose `status.terminalState` is `Completed` or `Failed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainflow.pipelines import Pipeline, Train
from trainflow.pipelines.param_types import TRAINING_RUNTIME
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import manifest_values, sizing
from trainflow.workflows.kubernetes import resources as k8s

API_VERSION = "trainer.kubeflow.org/v1alpha1"
KIND = "TrainJob"
PLURAL = "trainjobs"
RUNTIME_PLURAL = "clustertrainingruntimes"
JOBSET_API = "jobset.x-k8s.io/v1alpha2"
NODE = "node"  # the torch runtimes' replicated job and trainer container
DEFAULT_RUNTIME = "torch-distributed"
PATCH_MANAGER = "trainflow.io/compiler"
# The torch plugin sets these; a TrainJob's own env may not (the webhook refuses it).
RESERVED_ENV = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
SUCCEEDED = "status.terminalState == Completed"
FAILED = "status.terminalState == Failed"
WAIT_RETRIES = {"limit": 5, "retryPolicy": "OnError", "backoff": {"duration": "5s", "factor": 2}}


def runtime(pipeline: Pipeline, target: k8s.Target) -> str:
    """The runtime's name: the pipeline's parameter of that type (a placeholder), else the option's or the default."""
    fallback = target.options.training_runtime or DEFAULT_RUNTIME
    declared = next((p.name for p in pipeline.params if p.type == TRAINING_RUNTIME), None)
    return target.setting(declared, fallback) if declared else fallback


def train_job(
    target: k8s.Target, run: k8s.ContainerCommand, step: Train, runtime_name: str, outputs_dir: str | None
) -> dict[str, Any]:
    """The TrainJob running `run` on `workers` nodes of `runtime_name`, the dataset cache mounted in each."""
    if target.options.cache.mode == "per-node":
        raise WorkflowError(
            "--job-kind trainjob needs the shared cache (a runtime patch cannot add the per-node sync's "
            "init containers): drop --cache-mode per-node or use --job-kind pytorchjob"
        )
    main = k8s.container(target, NODE, step, run)
    main["env"] += sizing.dist_backend_env(target.resources(step))
    if outputs_dir:
        main["env"].append({"name": "TRAINFLOW_OUTPUTS", "value": outputs_dir})
    trainer: dict[str, Any] = {
        "image": main["image"],
        "command": main["command"],
        "args": main["args"],
        "env": main["env"],
        "numNodes": target.count(str(step.workers), f"{step.name} workers"),
        "numProcPerNode": 1,  # one launcher per pod; it forks the step's local workers itself
    }
    if "resources" in main:
        trainer["resourcesPerNode"] = main["resources"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": k8s.job_name(target, step),
            "namespace": target.namespace,
            "labels": k8s.labels(target, step.name),
        },
        "spec": {
            "runtimeRef": {"name": runtime_name},
            "trainer": trainer,
            "runtimePatches": [_pod_patch(target, step)],
        },
    }


def _pod_patch(target: k8s.Target, step: Train) -> dict[str, Any]:
    """The cache volume, its mount in the trainer container, the labels and the compile options' scheduling."""
    pod = k8s.pod_spec(target, [{"name": NODE, "volumeMounts": [k8s.cache_mount()]}])
    labels = {"labels": k8s.labels(target, step.name)}
    job = {"name": NODE, "template": {"metadata": labels, "spec": {"template": {"metadata": labels, "spec": pod}}}}
    return {"manager": PATCH_MANAGER, "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [job]}}}}


def jobset(target: k8s.Target, step: Train) -> dict[str, Any]:
    """The JobSet the Trainer controller creates for the TrainJob (same name): what the step waits on."""
    meta = {"name": k8s.job_name(target, step), "namespace": target.namespace}
    return {"apiVersion": JOBSET_API, "kind": "JobSet", "metadata": meta}


def create_and_wait(job_template: dict[str, Any], target: k8s.Target, step: Train) -> list[dict[str, Any]]:
    """`job_template` (creating the TrainJob) as a group under its name: create, then wait for the JobSet's end."""
    name = job_template["name"]
    create = {**job_template, "name": f"{name}-create"}
    wait_manifest = manifest_values.manifest(jobset(target, step))
    resource = {"action": "get", "manifest": wait_manifest, "successCondition": SUCCEEDED, "failureCondition": FAILED}
    # The controller makes the JobSet a moment after the TrainJob: a get before that fails and is retried.
    wait = {"name": f"{name}-wait", "resource": resource, "retryStrategy": WAIT_RETRIES}
    call: dict[str, Any] = {"name": "create", "template": create["name"]}
    group: dict[str, Any] = {"name": name, "steps": [[call], [{"name": "wait", "template": wait["name"]}]]}
    if "inputs" in job_template:
        group["inputs"] = job_template["inputs"]
        call["arguments"] = {
            "parameters": [
                {"name": p["name"], "value": "{{inputs.parameters.%s}}" % p["name"]}
                for p in job_template["inputs"]["parameters"]
            ]
        }
    return [group, create, wait]


def delete_manifest(target: k8s.Target, step: Train) -> dict[str, Any]:
    """What the exit handler deletes: the TrainJob (its JobSet and pods go with it)."""
    meta = {"name": k8s.job_name(target, step), "namespace": target.namespace}
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta}


def reserved_env(names: Sequence[str]) -> list[str]:
    """The env names the torch plugin owns among `names`."""
    return [n for n in names if n in RESERVED_ENV]
