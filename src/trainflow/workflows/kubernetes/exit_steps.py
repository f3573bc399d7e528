"""What runs when a workflow ends, whatever the outcome (Argo's `onExit`): the pipeline's exit steps and the cleanup.

With exit steps (`Pipeline(on_exit=...)`) or a tracked run to end (`tracking_exit`) the handler is a DAG running them
and the training jobs' cleanup (`exit_handler`) side by side, so a failing exit step never keeps a job alive and the
cleanup never keeps an exit step from running. A `Notify` step reads its URL from a Secret (`url_secret`) as an
environment variable, so the URL is never in the workflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainflow.pipelines import Pipeline, Step
from trainflow.pipelines.notify import Notify
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes.exit_handler import CLEANUP_TEMPLATE

EXIT_TEMPLATE = "exit-handler"


def exit_step(template: dict[str, Any], step: Step) -> dict[str, Any]:
    """An exit step's container template, with a `Notify` step's URL from its Secret."""
    if not isinstance(step, Notify) or step.url:
        return template
    if step.url_secret is None:
        raise WorkflowError(
            f"step {step.name} reads its webhook URL from ${step.url_env}, which a pod does not have: give it "
            "url_secret=(SECRET, KEY) naming a Kubernetes Secret that holds the URL"
        )
    name, key = step.url_secret
    env = {"name": step.url_variable, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
    template["container"]["env"].append(env)
    return template


def exit_dag(pipeline: Pipeline, cleanup: bool, end_run: str = "") -> list[dict[str, Any]]:
    """With exit steps or a tracked run to end (`end_run`: the template ending it): the handler's DAG, running the
    exit steps (each after the exit steps it waits for), the cleanup and the run's end side by side."""
    if not pipeline.on_exit and not end_run:
        return []
    tasks: list[dict[str, Any]] = [{"name": CLEANUP_TEMPLATE, "template": CLEANUP_TEMPLATE}] if cleanup else []
    tasks += [{"name": end_run, "template": end_run}] if end_run else []
    for step in pipeline.exit_order():
        task: dict[str, Any] = {"name": step.name, "template": step.name}
        if step.upstream():
            task["depends"] = " && ".join(f"{name}.Succeeded" for name in step.upstream())
        tasks.append(task)
    return [{"name": EXIT_TEMPLATE, "dag": {"tasks": tasks}}]


def on_exit(templates: Sequence[dict[str, Any]]) -> str | None:
    """The template `onExit` names: the exit steps' DAG, else the cleanup, else none."""
    names = {t["name"] for t in templates}
    return next((name for name in (EXIT_TEMPLATE, CLEANUP_TEMPLATE) if name in names), None)
