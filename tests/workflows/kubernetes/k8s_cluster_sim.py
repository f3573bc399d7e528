"""What the cluster gives a pod: Argo's placeholder values and the training operator's environment variables.

Reproduces training-operator v1.9 for the manifests trainflow generates: a PyTorchJob with a Master sets
MASTER_ADDR (`<job>-master-0`), MASTER_PORT (the `pytorchjob-port` container port, default 23456), WORLD_SIZE
(replicas x procs per node), RANK (master 0, worker i -> i+1), PET_NNODES, PET_NPROC_PER_NODE; an all-Worker
one with an elasticPolicy sets PET_RDZV_ENDPOINT (`<job>-worker-0:<port>`), PET_RDZV_BACKEND,
PET_NNODES=`min:max`, PET_MAX_RESTARTS, PET_NPROC_PER_NODE and no MASTER_ADDR, WORLD_SIZE or RANK; TFJob
sets TF_CONFIG with every replica's `<job>-<type>-<i>.<ns>.svc:<tfjob-port>` (only with more than one
replica) on the container named `tensorflow`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z0-9_.-]+)\s*\}\}")


def fill(text: str, values: Mapping[str, str]) -> str:
    """Argo's substitution: every `{{name}}` replaced from `values`; an unknown name is a test failure."""

    def one(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise KeyError(f"no value for {{{{{match.group(1)}}}}} in {text!r}")
        return values[match.group(1)]

    return PLACEHOLDER.sub(one, text)


def workflow_values(workflow: Mapping[str, Any]) -> dict[str, str]:
    values = {f"workflow.parameters.{p['name']}": p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    values["workflow.name"] = workflow["metadata"]["name"]
    return values


@dataclass
class Pod:
    replica_type: str
    index: int
    container: dict[str, Any]
    operator_env: dict[str, str]


def _port(container: Mapping[str, Any], name: str, default: int) -> int:
    return next((p["containerPort"] for p in container.get("ports", []) if p["name"] == name), default)


def pytorchjob_pods(job: Mapping[str, Any]) -> list[Pod]:
    name, specs = job["metadata"]["name"], job["spec"]["pytorchReplicaSpecs"]
    nnodes = sum(s["replicas"] for s in specs.values())
    nproc = job["spec"].get("nprocPerNode", "auto")
    nproc_int = int(nproc) if nproc.isdigit() else 1
    elastic = job["spec"].get("elasticPolicy")
    if elastic is not None:
        return _elastic_pods(name, specs["Worker"], elastic, nproc)
    pods = []
    for replica_type in ("Master", "Worker"):
        spec = specs.get(replica_type)
        for index in range(spec["replicas"] if spec else 0):
            container = next(c for c in spec["template"]["spec"]["containers"] if c["name"] == "pytorch")
            env = {
                "PYTHONUNBUFFERED": "1",
                "MASTER_ADDR": f"{name}-master-0",
                "MASTER_PORT": str(_port(container, "pytorchjob-port", 23456)),
                "WORLD_SIZE": str(nnodes * nproc_int),
                "RANK": str(index if replica_type == "Master" else index + 1),
                "PET_NNODES": str(nnodes),
                "PET_NPROC_PER_NODE": nproc,
            }
            pods.append(Pod(replica_type, index, container, env))
    return pods


def _elastic_pods(name: str, spec: Mapping[str, Any], elastic: Mapping[str, Any], nproc: str) -> list[Pod]:
    container = next(c for c in spec["template"]["spec"]["containers"] if c["name"] == "pytorch")
    env = {
        "PYTHONUNBUFFERED": "1",
        "PET_RDZV_ENDPOINT": f"{name}-worker-0:{_port(container, 'pytorchjob-port', 23456)}",
        "PET_RDZV_BACKEND": elastic["rdzvBackend"],
        "PET_NNODES": f"{elastic['minReplicas']}:{elastic['maxReplicas']}",
        "PET_NPROC_PER_NODE": nproc,
    }
    if "maxRestarts" in elastic:
        env["PET_MAX_RESTARTS"] = str(elastic["maxRestarts"])
    return [Pod("Worker", i, container, dict(env)) for i in range(spec["replicas"])]


def tfjob_pods(job: Mapping[str, Any]) -> list[Pod]:
    name, namespace, specs = job["metadata"]["name"], job["metadata"]["namespace"], job["spec"]["tfReplicaSpecs"]
    containers = {
        t: next(c for c in s["template"]["spec"]["containers"] if c["name"] == "tensorflow") for t, s in specs.items()
    }
    cluster = {
        t.lower(): [
            f"{name}-{t.lower()}-{i}.{namespace}.svc:{_port(containers[t], 'tfjob-port', 2222)}"
            for i in range(s["replicas"])
        ]
        for t, s in specs.items()
    }
    many = sum(s["replicas"] for s in specs.values()) > 1
    pods = []
    for replica_type, spec in specs.items():
        for index in range(spec["replicas"]):
            env = {"PYTHONUNBUFFERED": "1"}
            if many:
                env["TF_CONFIG"] = json.dumps(
                    {"cluster": cluster, "task": {"type": replica_type.lower(), "index": index}, "environment": "cloud"}
                )
            pods.append(Pod(replica_type, index, containers[replica_type], env))
    return pods
