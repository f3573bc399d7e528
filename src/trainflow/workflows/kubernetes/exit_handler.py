"""What a workflow leaves behind when it ends, whatever the outcome: the example's exit handler.

The training jobs are deleted (and with them their pods); the workflow's own one-shot pods (each
step's, the outputs reader's, the handler's) go by Argo's pod GC a while later, so their logs stay
readable for a bit. TensorBoard, the model server and the dataset cache stay: a Deployment's pods
belong to the Deployment, not to the workflow, so the pod GC leaves them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainflow.pipelines import Train
from trainflow.workflows.kubernetes import manifest_values, trainjob
from trainflow.workflows.kubernetes import resources as k8s

CLEANUP_TEMPLATE = "cleanup"
POD_GC_DELAY = "10m"


def cleanup_templates(target: k8s.Target, job_kind: str, trainers: Sequence[Train]) -> list[dict[str, Any]]:
    """The `onExit` template: delete every training job the workflow created (a missing one is fine)."""
    kind = "PyTorchJob" if job_kind == "pytorchjob" else "TFJob"
    group: dict[str, Any] = {"name": CLEANUP_TEMPLATE, "steps": []}
    deletes = []
    for step in trainers:
        job = {
            "apiVersion": "kubeflow.org/v1",
            "kind": kind,
            "metadata": {"name": k8s.job_name(target, step), "namespace": target.namespace},
        }
        if job_kind == "trainjob":
            job = trainjob.delete_manifest(target, step)
        resource = {"action": "delete", "manifest": manifest_values.manifest(job), "flags": ["--ignore-not-found"]}
        deletes.append({"name": f"delete-{step.name}", "resource": resource})
        group["steps"].append([{"name": f"delete-{step.name}", "template": f"delete-{step.name}"}])
    return [group, *deletes]


def pod_gc() -> dict[str, Any]:
    """Argo deletes the workflow's pods once it ends, succeeded or not, after a delay that keeps their logs."""
    return {"strategy": "OnWorkflowCompletion", "deleteDelayDuration": POD_GC_DELAY}
