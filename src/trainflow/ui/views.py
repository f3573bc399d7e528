"""What the dashboard shows of a workflow: `trainflow get -o json` plus its DAG and links."""

from __future__ import annotations

import time
from typing import Any

from trainflow.workflows import PIPELINES
from trainflow.workflows.backend import StepInfo, WorkflowInfo

# outputs shown as links, in this order: (step, output key, label)
LINKS = (
    ("tensorboard", "url", "TensorBoard"),
    ("serve-model", "rest-url", "Model REST"),
    ("serve-model", "grpc-address", "Model gRPC"),
    ("export-model", "model-url", "Exported model"),
    ("train-model", "metrics-url", "Metrics"),
)


def dag_levels(pipeline_name: str) -> dict[str, int]:
    """Each step's column in the drawing: the length of the longest dependency chain before it."""
    pipeline = PIPELINES[pipeline_name]
    levels: dict[str, int] = {}
    for step in pipeline.order():
        levels[step.name] = 1 + max((levels[d] for d in step.depends), default=-1)
    return levels


def workflow_dag(info: WorkflowInfo) -> dict[str, Any]:
    """Nodes (status, times, column, row) and edges (dependency -> step) of the workflow's steps."""
    pipeline = PIPELINES.get(info.pipeline)
    levels = dag_levels(info.pipeline) if pipeline else {s.name: i for i, s in enumerate(info.steps)}
    depends = {s.name: s.depends for s in pipeline.steps} if pipeline else {}
    rows = _rows(info.steps, levels, depends)
    nodes = [{"name": step.name, "status": step.status, "service": step.service, "level": levels.get(step.name, 0),
              "row": rows[step.name], "started_at": step.started_at, "finished_at": step.finished_at,
              "message": step.message, "duration": _seconds(step.started_at, step.finished_at)} for step in info.steps]
    names = {s.name for s in info.steps}
    edges = [[d, name] for name, deps in depends.items() for d in deps if d in names and name in names]
    return {"nodes": nodes, "edges": edges}


def _rows(steps: list[StepInfo], levels: dict[str, int], depends: dict[str, tuple[str, ...]]) -> dict[str, int]:
    """Order each column by the mean row of its dependencies, so that edges cross as little as possible."""
    rows: dict[str, int] = {}

    def parents_row(name: str) -> float:
        parents = [rows[d] for d in depends.get(name, ()) if d in rows]
        return sum(parents) / len(parents) if parents else 0.0

    for level in sorted({levels.get(s.name, 0) for s in steps}):
        column = [s.name for s in steps if levels.get(s.name, 0) == level]
        for row, name in enumerate(sorted(column, key=parents_row)):
            rows[name] = row
    return rows


def workflow_links(info: WorkflowInfo) -> list[dict[str, str]]:
    """Where to look next: TensorBoard, the model endpoints, the exported model, the metrics."""
    links = []
    for step_name, key, label in LINKS:
        step = info.step(step_name)
        value = step.outputs.get(key) if step else None
        if value:
            links.append({"label": label, "step": step_name, "value": str(value),
                          "href": str(value) if str(value).startswith("http") else ""})
    serve = info.step("serve-model")
    if serve and serve.outputs.get("rest-url") and serve.outputs.get("model-name"):
        status = f"{serve.outputs['rest-url']}/v1/models/{serve.outputs['model-name']}"
        links.insert(2, {"label": "Model status", "step": "serve-model", "value": status, "href": status})
    return links


def model_endpoint(info: WorkflowInfo) -> dict[str, Any] | None:
    """The served model of a workflow (REST URL, name, version), or None when it serves none."""
    serve = info.step("serve-model")
    if not serve or not serve.outputs.get("rest-url"):
        return None
    return {"rest-url": serve.outputs["rest-url"], "model-name": serve.outputs.get("model-name") or info.params.get("model-name", "mnist"),
            "model-version": serve.outputs.get("model-version")}


def workflow_view(info: WorkflowInfo) -> dict[str, Any]:
    """`info.to_dict()` unchanged, with `dag`, `links`, `model` and `duration` added for the page."""
    return {**info.to_dict(), "dag": workflow_dag(info), "links": workflow_links(info), "model": model_endpoint(info),
            "duration": _seconds(info.started_at, info.finished_at), "now": time.time()}


def _seconds(start: float | None, end: float | None) -> float | None:
    if start is None:
        return None
    return round((end or time.time()) - start, 3)
