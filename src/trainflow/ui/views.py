"""What the dashboard shows of a workflow: `trainflow get -o json` plus its DAG and links.

Everything comes from the steps' kinds, dependencies and outputs: a link is any output holding a URL
or an address; the served model is the step the spec declares to serve one (`trainflow.workflows.endpoints`).
"""

from __future__ import annotations

import time
from typing import Any

from trainflow.workflows.backend import StepInfo, WorkflowInfo
from trainflow.workflows.endpoints import ModelServer, model_server, serves_model

LINK_SUFFIXES = ("url", "address")


def dag_levels(steps: list[StepInfo]) -> dict[str, int]:
    """Each step's column in the drawing: the length of the longest dependency chain before it."""
    known = {s.name: s for s in steps}
    levels: dict[str, int] = {}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in levels:
            parents = [d for d in known[name].depends if d in known and d not in seen]
            levels[name] = 1 + max((level(d, seen | {name}) for d in parents), default=-1)
        return levels[name]

    for step in steps:
        level(step.name)
    return levels


def workflow_dag(info: WorkflowInfo) -> dict[str, Any]:
    """Nodes (status, times, column, row) and edges (dependency -> step) of the workflow's steps."""
    levels = dag_levels(info.steps)
    depends = {s.name: tuple(s.depends) for s in info.steps}
    rows = _rows(info.steps, levels, depends)
    nodes = [
        {
            "name": step.name,
            "status": step.status,
            "service": step.service,
            "level": levels.get(step.name, 0),
            "row": rows[step.name],
            "started_at": step.started_at,
            "finished_at": step.finished_at,
            "message": step.message,
            "duration": _seconds(step.started_at, step.finished_at),
        }
        for step in info.steps
    ]
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
    """Where to look next: every URL or address a step wrote (services first), and the model's status page."""
    links = []
    server = model_server(info)
    for step in sorted(info.steps, key=lambda s: not s.service):
        for key, value in step.outputs.items():
            text = str(value)
            if key.endswith(LINK_SUFFIXES) or text.startswith(("http://", "https://")):
                links.append(
                    {
                        "label": f"{step.name} {key}",
                        "step": step.name,
                        "value": text,
                        "href": text if text.startswith("http") else "",
                    }
                )
        if server is not None and server.step == step.name and server.rest_url:
            status = f"{server.rest_url}/v1/models/{server.model_name}"
            links.append({"label": f"{step.name} model status", "step": step.name, "value": status, "href": status})
    return links


def served_model(info: WorkflowInfo) -> ModelServer | None:
    """The model server the dashboard can ask: one on this machine that speaks REST."""
    server = model_server(info)
    return server if server is not None and server.rest_url else None


def model_endpoint(info: WorkflowInfo) -> dict[str, Any] | None:
    """What the page says of the served model (REST URL, name, version); None while nothing serves one here."""
    server = served_model(info)
    if server is None:
        return None
    return {"rest_url": server.rest_url, "name": server.model_name, "version": server.version, "step": server.step}


def workflow_view(info: WorkflowInfo) -> dict[str, Any]:
    """`info.to_dict()` unchanged, with `dag`, `links`, `model` and `duration` added for the page."""
    return {
        **info.to_dict(),
        "dag": workflow_dag(info),
        "links": workflow_links(info),
        "model": model_endpoint(info),
        "serves_model": serves_model(info),
        "duration": _seconds(info.started_at, info.finished_at),
        "now": time.time(),
    }


def _seconds(start: float | None, end: float | None) -> float | None:
    if start is None:
        return None
    return round((end or time.time()) - start, 3)
