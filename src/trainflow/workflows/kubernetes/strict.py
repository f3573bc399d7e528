"""Strict checks the CRD schemas miss: unknown fields, enums, DNS-1035 names, operator container names, inline secrets.

Runs on every compile and submit (no schema files needed). Manifests embedded in the workflow's resource
templates are checked as Argo will create them: with workflow parameters and the workflow name filled in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from trainflow.pipelines.k8s_names import DNS_1123_LABEL_ANY_LENGTH
from trainflow.pipelines.param_types import QUANTITY
from trainflow.tracking.client import redacted
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import katib_trials, manifest_values, tracking_env, yamltext
from trainflow.workflows.kubernetes.shapes import BY_KIND, unknown_fields

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")
DNS_1123 = DNS_1123_LABEL_ANY_LENGTH  # _check_name bounds the length
PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
ENUMS = {
    "restartPolicy": ("Always", "OnFailure", "Never", "ExitCode"),
    "cleanPodPolicy": ("All", "Running", "None"),
    "action": ("get", "create", "apply", "delete", "replace", "patch"),
    "retryPolicy": ("Always", "OnFailure", "OnError", "OnTransientError"),
    "protocol": ("TCP", "UDP", "SCTP"),
    "imagePullPolicy": ("Always", "IfNotPresent", "Never"),
}
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
OPERATOR_CONTAINER = {"PyTorchJob": "pytorch", "TFJob": "tensorflow"}
DNS_1035_KINDS = ("Service", "Workflow", "PyTorchJob", "TFJob", "TrainJob", "Deployment", "InferenceService")
SHAPES = {**BY_KIND, "Experiment": katib_trials.EXPERIMENT}
# Knative names the predictor's revision <name>-predictor-00001: a DNS-1035 label too.
KSERVE_REVISION_SUFFIX = "-predictor-00001"
REPLICA_KEY = {"PyTorchJob": "pytorchReplicaSpecs", "TFJob": "tfReplicaSpecs"}
SECRET_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", *tracking_env.CREDENTIAL_VARS)


def embedded_manifests(workflow: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The objects the workflow's resource templates create, with workflow placeholders filled in."""
    values = manifest_values.values_of(workflow)
    found = []
    for template in workflow["spec"]["templates"]:
        manifest = template.get("resource", {}).get("manifest")
        if manifest:
            found.append(yamltext.load(manifest_values.fill(manifest, values.get)))
    return found


def problems(obj: Mapping[str, Any]) -> list[str]:
    """Everything wrong with one generated object (and, for a workflow, the objects it creates)."""
    kind = obj.get("kind", "?")
    shape = SHAPES.get(kind)
    if shape is None:
        return [f"{kind}: trainflow does not generate this kind"]
    found = unknown_fields(obj, shape)
    found += _enum_problems(obj)
    found += _name_problems(obj)
    found += _secret_problems(obj)
    found += _quantity_problems(obj)
    if kind in OPERATOR_CONTAINER:
        found += _job_problems(obj)
    if kind == "TrainJob":
        found += _trainjob_problems(obj)
    if kind == "InferenceService":
        revision = f"{obj.get('metadata', {}).get('name', '')}{KSERVE_REVISION_SUFFIX}"
        found += _check_name(revision, DNS_1035, "predictor revision name (name too long?)", "metadata.name")
    if kind == "Service" and obj.get("spec", {}).get("type", "ClusterIP") not in SERVICE_TYPES:
        found.append(f"spec.type: '{obj['spec']['type']}' is not one of {', '.join(SERVICE_TYPES)}")
    if kind == "PersistentVolumeClaim":
        found += [
            f"spec.accessModes: '{m}' is not one of {', '.join(ACCESS_MODES)}"
            for m in obj.get("spec", {}).get("accessModes", [])
            if m not in ACCESS_MODES
        ]
    label = f"{kind} {obj.get('metadata', {}).get('name', '?')}"
    found = [f"{label}: {p}" for p in found]
    if kind == "Workflow":
        found += [p for inner in embedded_manifests(obj) for p in problems(inner)]
    if kind == "Experiment":  # the job each trial runs, as Katib writes it from the trial template
        found += [f"{label} trial: {p}" for p in problems(katib_trials.trial_job(obj))]
    return found


def check_objects(objects: list[dict[str, Any]]) -> None:
    """Raise a WorkflowError naming the first problems, if any object has one."""
    found = [p for obj in objects for p in problems(obj)]
    if found:
        more = f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
        raise WorkflowError(f"generated manifests are invalid: {found[0]}{more}: check the parameters")


def _walk(obj: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) of every field, depth first; embedded manifests are strings and not entered."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            where = f"{path}.{key}" if path else key
            yield where, key, value
            yield from _walk(value, where)
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _walk(item, f"{path}[{i}]")


def _enum_problems(obj: Mapping[str, Any]) -> list[str]:
    return [
        f"{path}: '{value}' is not one of {', '.join(ENUMS[key])}"
        for path, key, value in _walk(obj)
        if key in ENUMS and isinstance(value, str) and "{{" not in value and value not in ENUMS[key]
    ]


def _check_name(value: Any, pattern: re.Pattern[str], what: str, path: str, limit: int = 63) -> list[str]:
    if not isinstance(value, str) or "{{" in value:
        return []
    if len(value) > limit or not pattern.fullmatch(value):
        start = "a letter" if pattern is DNS_1035 else "a letter or digit"
        return [
            f"{path}: '{value}' is not a valid {what} (at most {limit} characters: lowercase letters, digits "
            f"and '-', starting with {start})"
        ]
    return []


def _name_problems(obj: Mapping[str, Any]) -> list[str]:
    found = _check_name(
        obj.get("metadata", {}).get("name"),
        DNS_1035 if obj["kind"] in DNS_1035_KINDS else DNS_1123,
        "name",
        "metadata.name",
    )
    for path, key, value in _walk(obj):
        if path.endswith("ports") and isinstance(value, list):
            found += [
                p
                for i, port in enumerate(value)
                for p in _check_name(port.get("name"), PORT_NAME, "port name", f"{path}[{i}].name", 15)
            ]
        if key in ("containers", "volumes") and isinstance(value, list):
            found += [
                p
                for i, item in enumerate(value)
                for p in _check_name(item.get("name"), DNS_1123, "DNS-1123 label", f"{path}[{i}].name")
            ]
        if key == "templates" and isinstance(value, list):
            found += [
                p
                for i, t in enumerate(value)
                for p in _check_name(t.get("name"), DNS_1123, "template name", f"{path}[{i}].name")
            ]
    return found


def _secret_problems(obj: Mapping[str, Any]) -> list[str]:
    envs = [(path, env) for path, key, value in _walk(obj) if key == "env" and isinstance(value, list) for env in value]
    return [
        f"{path}: {env['name']} is inline; credentials must come from a Secret (valueFrom.secretKeyRef)"
        for path, env in envs
        if env.get("name") in SECRET_VARS and "value" in env
    ] + [
        f"{path}: {tracking_env.URI_VAR} holds a user name or password; credentials must come from a Secret"
        for path, env in envs
        if env.get("name") == tracking_env.URI_VAR and redacted(str(env.get("value", ""))) != env.get("value", "")
    ]


def _job_problems(job: Mapping[str, Any]) -> list[str]:
    kind, name = job["kind"], job["metadata"].get("name", "")
    found = []
    for replica_type, replica in job.get("spec", {}).get(REPLICA_KEY[kind], {}).items():
        where = f"spec.{REPLICA_KEY[kind]}.{replica_type}"
        containers = replica.get("template", {}).get("spec", {}).get("containers", [])
        if OPERATOR_CONTAINER[kind] not in [c.get("name") for c in containers]:
            found.append(
                f"{where}: needs a container named '{OPERATOR_CONTAINER[kind]}' (the operator configures only that one)"
            )
        # The operator names a Service per pod: <job>-<type>-<index>; it must be a DNS-1035 label too.
        last = f"{name}-{replica_type.lower()}-{max(int(replica.get('replicas', 1)) - 1, 0)}"
        found += _check_name(last, DNS_1035, "pod service name (job name too long?)", where)
    return found


def _trainjob_problems(job: Mapping[str, Any]) -> list[str]:
    """Names the Trainer and JobSet derive from the TrainJob's, the torch plugin's reserved env, the patched container."""
    name, spec = job["metadata"].get("name", ""), job.get("spec", {})
    trainer = spec.get("trainer", {})
    nodes = trainer.get("numNodes", 1)
    found = []
    if not isinstance(nodes, int) or nodes < 1:
        found.append(f"spec.trainer.numNodes: '{nodes}' is not a whole number of at least 1")
    else:
        # JobSet names each pod's host <job>-node-<job index>-<pod index>: a DNS-1035 label (the master's address).
        found += _check_name(
            f"{name}-node-0-{nodes - 1}", DNS_1035, "pod host name (job name too long?)", "metadata.name"
        )
    reserved = [e.get("name") for e in trainer.get("env", []) if str(e.get("name", "")).startswith("PET_")]
    found += [f"spec.trainer.env: {n} is set by the torch runtime and may not be given" for n in reserved]
    for i, patch in enumerate(spec.get("runtimePatches", [])):
        jobs = patch.get("trainingRuntimeSpec", {}).get("template", {}).get("spec", {}).get("replicatedJobs", [])
        for job_patch in jobs:
            pod = job_patch.get("template", {}).get("spec", {}).get("template", {}).get("spec", {})
            names = [c.get("name") for c in pod.get("containers", [])]
            if names and names != ["node"]:
                found.append(
                    f"spec.runtimePatches[{i}]: patches containers {names}; the torch runtime's trainer is 'node'"
                )
    return found


def _quantity_problems(obj: Mapping[str, Any]) -> list[str]:
    """Every filled-in request and limit must be a quantity (a submit-time size is a parameter's text)."""
    return [
        f"{path}.{name}: '{str(value)[:60]}' is not a Kubernetes quantity"
        for path, key, value in _walk(obj)
        if key in ("requests", "limits") and isinstance(value, dict) and "resources" in path.lower()
        for name, value in value.items()
        if not (isinstance(value, int) or (isinstance(value, str) and ("{{" in value or QUANTITY.fullmatch(value))))
    ]
