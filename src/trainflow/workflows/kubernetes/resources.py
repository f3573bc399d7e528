"""Kubernetes objects as plain dicts: the cache volume, service Deployments and Services, training jobs, RBAC.

Pure functions, no client: what `trainflow compile` prints and what the backend submits. Names, images,
replica counts and the Secret come from the resolved parameters (what the objects are); a step's
arguments stay the spec's tokens rendered as Argo expressions (what the step does; see render.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trainflow.pipelines import Port, Service, Step, Train
from trainflow.pipelines.refs import ParamRef, substitute

CACHE_CLAIM = "trainflow-cache"
CACHE_MOUNT = "/var/lib/trainflow"  # TRAINFLOW_HOME in every container: dataset cache (and default store)
CACHE_SIZE = "10Gi"
SERVICE_ACCOUNT = "trainflow"
MANAGED_BY = {"app.kubernetes.io/managed-by": "trainflow"}
WORKFLOW_LABEL = "trainflow.io/workflow"
STEP_LABEL = "trainflow.io/step"
PYTORCHJOB_PORT = 23456  # the training operator's default MASTER_PORT
TFJOB_PORT = 2222  # the port TF_CONFIG addresses use
JOB_KINDS = ("pytorchjob", "tfjob")
AWS_SECRET_KEYS = (("AWS_ACCESS_KEY_ID", "awsAccessKeyID"), ("AWS_SECRET_ACCESS_KEY", "awsSecretAccessKey"))
DEFAULT_IMAGE = "ghcr.io/trainflow/trainflow:0.1.0"


def workflow_param(name: str) -> str:
    return "{{workflow.parameters.%s}}" % name


@dataclass(frozen=True)
class Target:
    """What the objects belong to: the workflow's name and its resolved parameters."""

    workflow: str
    values: Mapping[str, str]

    @property
    def namespace(self) -> str:
        return self.values["namespace"]

    @property
    def secret(self) -> str:
        return self.values.get("aws-secret") or "aws-creds"

    def image(self, step: Step) -> str:
        if isinstance(step.image, ParamRef):
            return self.values[step.image.name]
        return step.image or DEFAULT_IMAGE

    def value(self, text: str) -> str:
        """`text` with parameter placeholders filled in (what an object's shape, not its command, needs)."""
        return substitute(text, lambda ref: self.values[ref.name] if isinstance(ref, ParamRef) else str(ref))


@dataclass(frozen=True)
class ContainerCommand:
    """What a container runs: `trainflow step <name>` (command) and its arguments."""

    command: list[str]
    args: list[str]


def labels(target: Target, step: str) -> dict[str, str]:
    return {**MANAGED_BY, WORKFLOW_LABEL: target.workflow, STEP_LABEL: step}


def selector(target: Target, step: str) -> dict[str, str]:
    return {WORKFLOW_LABEL: target.workflow, STEP_LABEL: step}


def container_env(target: Target) -> list[dict[str, Any]]:
    """TRAINFLOW_HOME on the cache volume; S3 credentials only as references to the Secret."""
    secret = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": target.secret, "key": key, "optional": True}}}
        for var, key in AWS_SECRET_KEYS
    ]
    return [{"name": "TRAINFLOW_HOME", "value": CACHE_MOUNT}, {"name": "PYTHONUNBUFFERED", "value": "1"}, *secret]


def cache_volume() -> dict[str, Any]:
    return {"name": CACHE_CLAIM, "persistentVolumeClaim": {"claimName": CACHE_CLAIM}}


def cache_mount() -> dict[str, Any]:
    return {"name": CACHE_CLAIM, "mountPath": CACHE_MOUNT}


def container(
    target: Target, name: str, step: Step, run: ContainerCommand, ports: Sequence[Port] = ()
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "image": target.image(step),
        "command": run.command,
        "args": run.args,
        "env": container_env(target),
        "volumeMounts": [cache_mount()],
    }
    if ports:
        spec["ports"] = [{"name": p.name, "containerPort": p.container_port, "protocol": "TCP"} for p in ports]
    limits = {k: v for k, v in (("cpu", step.resources.cpu), ("memory", step.resources.memory)) if v}
    if step.resources.gpu:
        limits["nvidia.com/gpu"] = str(step.resources.gpu)
    if limits:
        spec["resources"] = {"requests": dict(limits), "limits": dict(limits)}
    return spec


def cache_claim(namespace: str) -> dict[str, Any]:
    """The dataset cache: created once per namespace and reused by every later run (download once)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CACHE_CLAIM, "namespace": namespace, "labels": dict(MANAGED_BY)},
        # Training pods on several nodes read the same cache: the claim must be mountable by all of them.
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": CACHE_SIZE}}},
    }


def service_name(target: Target, step: Step) -> str:
    return object_name(target, step)


def object_name(target: Target, step: Step) -> str:
    """What a step's Kubernetes objects are called: its `kube_name`, else WORKFLOW-STEP."""
    return (step.kube_name or "{workflow}-%s" % step.name).replace("{workflow}", target.workflow)


def deployment(target: Target, step: Service, run: ContainerCommand) -> dict[str, Any]:
    """A service step as a one-replica Deployment, ready when its probe answers."""
    main = container(target, step.name, step, run, step.ports)
    if step.probe is not None:
        main["readinessProbe"] = {
            "httpGet": {"path": step.probe.path, "port": step.probe.port},
            "initialDelaySeconds": 2,
            "periodSeconds": 5,
        }
    if step.liveness is not None:
        main["livenessProbe"] = {
            "httpGet": {"path": step.liveness.path, "port": step.liveness.port},
            "periodSeconds": 10,
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": service_name(target, step),
            "namespace": target.namespace,
            "labels": labels(target, step.name),
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(target, step.name)},
            "template": {
                "metadata": {"labels": labels(target, step.name)},
                "spec": {"containers": [main], "volumes": [cache_volume()]},
            },
        },
    }


def service(target: Target, step: Service) -> dict[str, Any]:
    """The Service in front of a service step, of the step's `service_type`."""
    service_type = target.value(str(step.service_type))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(target, step),
            "namespace": target.namespace,
            "labels": labels(target, step.name),
        },
        "spec": {
            "type": service_type,
            "selector": selector(target, step.name),
            "ports": [
                {"name": p.name, "port": p.container_port, "targetPort": p.name, "protocol": "TCP"} for p in step.ports
            ],
        },
    }


def _replica(target: Target, count: int, container_spec: dict[str, Any], step: str) -> dict[str, Any]:
    # ExitCode: exit >= 128 (killed, transient) recreates the pod; 1-127 fails the job.
    return {
        "replicas": count,
        "restartPolicy": "ExitCode",
        "template": {
            "metadata": {"labels": labels(target, step)},
            "spec": {"containers": [container_spec], "volumes": [cache_volume()]},
        },
    }


def replica_count(target: Target, count: str) -> int:
    """A replica count from the spec (a number or a parameter placeholder)."""
    return int(target.value(count) or 0)


def job_name(target: Target, step: Step) -> str:
    return object_name(target, step)


def outputs_reader(target: Target, step: Step, source: str, outputs_dir: str) -> dict[str, Any]:
    """A container that copies what a training job's rank-0 pod wrote on the shared volume to `outputs_dir`."""
    copy = ContainerCommand(["sh", "-c"], ['mkdir -p "$1" && cp -R "$0". "$1"', source, outputs_dir])
    return container(target, "main", step, copy)


def training_job(
    kind: str, target: Target, run: ContainerCommand, step: Train, outputs_dir: str | None = None
) -> dict[str, Any]:
    """A PyTorchJob (Master + workers - 1 Workers) or a TFJob (workers Workers + ps PS), named WORKFLOW-STEP.

    With `outputs_dir`, the pods write the step's outputs there (only the one hosting rank 0 has any).
    """
    workers, ps = replica_count(target, str(step.workers)), replica_count(target, str(step.ps))
    meta = {"name": job_name(target, step), "namespace": target.namespace, "labels": labels(target, step.name)}
    run_policy = {"cleanPodPolicy": "Running", "backoffLimit": 3}
    if kind == "pytorchjob":
        port = Port("pytorchjob-port", PYTORCHJOB_PORT, "tcp")
        main = container(target, "pytorch", step, run, (port,))
        if outputs_dir:
            main["env"].append({"name": "TRAINFLOW_OUTPUTS", "value": outputs_dir})
        replicas = {"Master": _replica(target, 1, main, step.name)}
        if workers > 1:
            replicas["Worker"] = _replica(target, workers - 1, main, step.name)
        spec: dict[str, Any] = {"nprocPerNode": "1", "runPolicy": run_policy, "pytorchReplicaSpecs": replicas}
        return {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": meta, "spec": spec}
    port = Port("tfjob-port", TFJOB_PORT, "tcp")
    main = container(target, "tensorflow", step, run, (port,))
    if outputs_dir:
        main["env"].append({"name": "TRAINFLOW_OUTPUTS", "value": outputs_dir})
    replicas = {"Worker": _replica(target, workers, main, step.name)}
    if ps > 0:
        replicas["PS"] = _replica(target, ps, main, step.name)
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": meta,
        "spec": {"runPolicy": run_policy, "tfReplicaSpecs": replicas},
    }


def job_conditions(kind: str, workers: int) -> tuple[str, str]:
    """Argo success and failure conditions on the job's replica counts."""
    if kind == "pytorchjob":
        return "status.replicaStatuses.Master.succeeded > 0", "status.replicaStatuses.Master.failed > 0"
    return f"status.replicaStatuses.Worker.succeeded == {workers}", "status.replicaStatuses.Worker.failed > 0"


def rbac(namespace: str) -> list[dict[str, Any]]:
    """ServiceAccount + Role + RoleBinding: what the workflow's pods need (the example's argo-cluster-role)."""
    meta = {"namespace": namespace, "labels": dict(MANAGED_BY)}
    verbs = ["get", "list", "watch", "create", "update", "patch", "delete"]
    rules = [
        {"apiGroups": ["kubeflow.org"], "resources": ["tfjobs", "pytorchjobs"], "verbs": verbs},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": verbs},
        {"apiGroups": [""], "resources": ["services", "persistentvolumeclaims"], "verbs": verbs},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list", "watch"]},
        # The Argo executor reports each step's outputs through these.
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get", "list", "watch", "patch"]},
    ]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": SERVICE_ACCOUNT, **meta},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": SERVICE_ACCOUNT, **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SERVICE_ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}],
        },
    ]
