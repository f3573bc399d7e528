"""An Argo Workflow object (as the API returns it) as trainflow's WorkflowInfo, phases mapped to our statuses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from trainflow.pipelines.builtin import PIPELINES
from trainflow.pipelines.roles import param_types
from trainflow.workflows.backend import (
    FAILED,
    OMITTED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    StepInfo,
    WorkflowInfo,
)
from trainflow.workflows.kubernetes.render import PARAM_TYPES_ANNOTATION, PIPELINE_LABEL, step_summary
from trainflow.workflows.kubernetes.suspension import shown_status

# Argo's workflow and node phases; "Error" is Argo's own failure (not the step's): a failure for users.
PHASES = {
    "Pending": PENDING,
    "Running": RUNNING,
    "Succeeded": SUCCEEDED,
    "Failed": FAILED,
    "Error": FAILED,
    "Skipped": SKIPPED,
    "Omitted": OMITTED,
}


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 timestamp as the API writes it ("2026-01-02T03:04:05Z") in epoch seconds."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _node_outputs(node: Mapping[str, Any]) -> dict[str, Any]:
    return {p["name"]: p.get("value") for p in node.get("outputs", {}).get("parameters", []) or []}


def _step_node(nodes: Mapping[str, Any], step: str) -> Mapping[str, Any] | None:
    """The DAG task node of a step (a retried step's Retry node, a service's Steps node)."""
    matches = [n for n in nodes.values() if n.get("displayName") == step and n.get("type") != "StepGroup"]
    return min(matches, key=lambda n: n.get("startedAt") or "") if matches else None


def declared_steps(meta: Mapping[str, Any], pipeline: str) -> list[dict[str, Any]]:
    """The steps the workflow's annotation lists (a workflow created before it existed: the built-in's steps)."""
    text = (meta.get("annotations") or {}).get("trainflow.io/steps")
    if text:
        try:
            return list(json.loads(text))
        except ValueError:
            pass
    return json.loads(step_summary(PIPELINES.get(pipeline, PIPELINES["model-train"])))


def step_infos(steps: list[dict[str, Any]], status: Mapping[str, Any]) -> list[StepInfo]:
    nodes = status.get("nodes", {}) or {}
    infos = []
    for step in steps:
        info = StepInfo(
            step["name"],
            service=bool(step.get("service")),
            depends=list(step.get("depends", [])),
            kind=str(step.get("kind", "")),
            provides=dict(step.get("provides") or {}),
        )
        node = _step_node(nodes, step["name"])
        if node is not None:
            info.status = PHASES.get(node.get("phase", ""), PENDING)
            info.started_at, info.finished_at = parse_time(node.get("startedAt")), parse_time(node.get("finishedAt"))
            info.message, info.outputs = node.get("message", ""), _node_outputs(node)
        elif status.get("phase") in ("Succeeded", "Failed", "Error"):
            # Left out of the workflow (model-serving=false) or never reached.
            info.status = SKIPPED if step.get("when") else OMITTED
        infos.append(info)
    return infos


def workflow_info(raw: Mapping[str, Any], backend: str) -> WorkflowInfo:
    """What `trainflow get` shows for one Workflow object."""
    meta, status = raw.get("metadata", {}), raw.get("status", {}) or {}
    pipeline = meta.get("labels", {}).get(PIPELINE_LABEL, "model-train")
    params = {
        p["name"]: str(p.get("value", "")) for p in raw.get("spec", {}).get("arguments", {}).get("parameters", [])
    }
    return WorkflowInfo(
        name=meta.get("name", ""),
        pipeline=pipeline,
        status=shown_status(raw, PHASES.get(status.get("phase", ""), PENDING)),
        params=params,
        created_at=parse_time(meta.get("creationTimestamp")) or 0.0,
        started_at=parse_time(status.get("startedAt")),
        finished_at=parse_time(status.get("finishedAt")),
        message=status.get("message", ""),
        steps=step_infos(declared_steps(meta, pipeline), status),
        backend=backend,
        param_types=declared_param_types(meta, pipeline),
    )


def declared_param_types(meta: Mapping[str, Any], pipeline: str) -> dict[str, str]:
    """The parameter types the workflow's annotation records (a workflow created before it existed: the built-in's)."""
    try:
        found = json.loads((meta.get("annotations") or {}).get(PARAM_TYPES_ANNOTATION) or "null")
    except ValueError:
        found = None
    if isinstance(found, dict):
        return {str(k): str(v) for k, v in found.items()}
    return param_types(PIPELINES[pipeline]) if pipeline in PIPELINES else {}
