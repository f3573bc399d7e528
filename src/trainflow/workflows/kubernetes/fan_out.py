"""A fan-out as Argo runs it: `withItems` for a list, `withParam` for a parameter or an earlier step's output, and a
step's `parallelism` as a DAG template of its own.

Argo caps concurrency per template, not per task, so a fan-out with a parallelism becomes a small DAG template
(`STEP-items`, whose `parallelism` is the step's) holding the fanned-out task; the outer task passes it what the
inner one reads from other tasks and the list, and the DAG gives back the gathered outputs later steps read.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from trainflow.pipelines import Step
from trainflow.pipelines.conditions import parse_condition
from trainflow.pipelines.refs import OutputRef, ParamRef
from trainflow.workflows.kubernetes import resources as k8s

ITEMS_INPUT = "for-each-items"  # the capped DAG's input holding the list its task fans out over


def items_source(step: Step) -> dict[str, Any]:
    """The task fields that fan `step` out: `withItems` (a list) or `withParam` (a JSON list Argo reads at run time)."""
    if isinstance(step.for_each, ParamRef):
        return {"withParam": k8s.workflow_param(step.for_each.name)}
    if isinstance(step.for_each, OutputRef):
        return {"withParam": "{{tasks.%s.outputs.parameters.%s}}" % (step.for_each.step, step.for_each.key)}
    if step.for_each is not None:
        return {"withItems": list(step.for_each)}
    return {}


def template_name(step: Step) -> str:
    return f"{step.name}-items"


def capped(task: dict[str, Any], step: Step, read_keys: Collection[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task and its DAG template for a fan-out with a `parallelism`; `read_keys`: its outputs later steps read."""
    forwarded: list[dict[str, str]] = []
    arguments = []
    for parameter in task.get("arguments", {}).get("parameters", []):
        if parameter["value"].startswith("{{item"):  # the item stays with the fanned-out task
            arguments.append(parameter)
        else:
            forwarded.append(parameter)
            arguments.append({"name": parameter["name"], "value": "{{inputs.parameters.%s}}" % parameter["name"]})
    inner: dict[str, Any] = {"name": step.name, "template": task["template"]}
    if arguments:
        inner["arguments"] = {"parameters": arguments}
    if "withParam" in task:
        forwarded.append({"name": ITEMS_INPUT, "value": task["withParam"]})
        inner["withParam"] = "{{inputs.parameters.%s}}" % ITEMS_INPUT
    else:
        inner["withItems"] = task["withItems"]
    outer = {k: v for k, v in task.items() if k not in ("withParam", "withItems", "arguments")}
    outer["template"] = template_name(step)
    template: dict[str, Any] = {"name": template_name(step), "parallelism": step.parallelism, "dag": {"tasks": [inner]}}
    if forwarded:
        outer["arguments"] = {"parameters": forwarded}
        template["inputs"] = {"parameters": [{"name": p["name"]} for p in forwarded]}
    if read_keys:
        template["outputs"] = {
            "parameters": [
                {"name": key, "valueFrom": {"parameter": "{{tasks.%s.outputs.parameters.%s}}" % (step.name, key)}}
                for key in read_keys
            ]
        }
    return outer, template


def cap(steps: Sequence[Step], tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace the task of each step with a parallelism (`tasks[i]` is `steps[i]`'s) by its capped form; the DAG
    templates they call."""
    reads = {(r.step, r.key) for s in steps for r in _output_reads(s)}
    templates = []
    for i, step in enumerate(steps):
        if step.parallelism is not None:
            keys = [k for k in step.declared_outputs() if (step.name, k) in reads]
            tasks[i], template = capped(tasks[i], step, keys)
            templates.append(template)
    return templates


def _output_reads(step: Step) -> list[OutputRef]:
    """The outputs a task reads through `{{tasks...}}`: in its arguments, its condition and its fan-out."""
    found = [*step.output_refs()]
    if step.when:
        found += [r for r in parse_condition(step.when).refs() if isinstance(r, OutputRef)]
    if isinstance(step.for_each, OutputRef):
        found.append(step.for_each)
    return found
