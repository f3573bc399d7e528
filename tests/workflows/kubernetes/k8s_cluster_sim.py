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

TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


class ArgoRefused(Exception):
    """What Argo does with an expression it cannot evaluate for a resource template: the step errors."""


class _Scope(dict):  # type: ignore[type-arg]
    """`workflow.parameters['x']` as expr reads it: attribute and item access into nested maps."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


def _nested(values: Mapping[str, str]) -> dict[str, Any]:
    """Argo's expression environment: flat `a.b.c` names expanded into nested maps (util/expand)."""
    root: dict[str, Any] = _Scope()
    for key, value in values.items():
        node = root
        parameter = key.startswith(("workflow.parameters.", "inputs.parameters."))
        *parents, last = key.split(".", 2) if parameter else key.split(".")
        for part in parents:
            node = node.setdefault(part, _Scope())
        node[last] = value
    return root


def _as_float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ArgoRefused(f"asFloat({value!r})") from None


class _Sprig:
    lower = staticmethod(str.lower)
    trim = staticmethod(str.strip)


def _as_int(value: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise ArgoRefused(f"asInt({value!r})")
    return int(value)


def _go_json(value: str) -> str:
    """Go's json.Marshal of a string: UTF-8 as is, control characters, <, >, & and U+2028/9 escaped."""
    return json.dumps(value, ensure_ascii=False).translate({ord(c): "\\u%04x" % ord(c) for c in "<>&\u2028\u2029"})


def evaluate(expression: str, values: Mapping[str, str]) -> str:
    """An expression tag's value as Argo's controller computes it (expr, with Argo's toJson and asInt)."""
    # Argo reads an expression holding '?' and ':' as a ternary (util/template/expression_template.go).
    assert not ("?" in expression and ":" in expression), f"Argo would split this at '?': {expression}"
    env = {"toJson": _go_json, "asInt": _as_int, "asFloat": _as_float, "sprig": _Sprig, **_nested(values)}
    # expr's && and || are Python's and/or; trainflow's literals escape '&' and '|', so no string holds them.
    python = expression.replace(" && ", " and ").replace(" || ", " or ")
    try:
        result = eval(python, {"__builtins__": {}}, env)  # the expressions trainflow writes are Python too
    except (KeyError, AttributeError, NameError) as exc:
        raise KeyError(f"no value for {exc} in {{{{={expression}}}}}") from None
    return str(result).lower() if isinstance(result, bool) else str(result)


def fill(text: str, values: Mapping[str, str], keep_unknown: bool = False) -> str:
    """Argo's substitution: `{{name}}` replaced from `values` as plain text, `{{=expr}}` by its value.

    An unknown name is a test failure, or with `keep_unknown` left for a later stage (runtime tags).
    """

    def one(match: re.Match[str]) -> str:
        tag = match.group(1)
        try:
            if tag.startswith("="):
                return evaluate(tag[1:], values)
            if tag.strip() not in values:
                raise KeyError(f"no value for {{{{{tag}}}}} in {text!r}")
            return values[tag.strip()]
        except KeyError:
            if keep_unknown:
                return match.group(0)
            raise

    return TAG.sub(one, text)


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
