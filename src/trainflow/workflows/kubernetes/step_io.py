"""What a step's Argo template takes in and how it re-runs: its command, inputs, arguments, retries, memoization.

A step reads an earlier step's output through an input parameter of its template (fed by the DAG task's
arguments), the fan-out item through the input `item`; its command renders the spec's placeholders as
those inputs and workflow parameters.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from trainflow import __version__
from trainflow.pipelines import Pipeline, Step
from trainflow.pipelines.conditions import parse_condition
from trainflow.pipelines.refs import HostRef, ItemRef, OutputRef, ParamRef, PortRef, Ref, WorkflowRef, substitute
from trainflow.pipelines.steps import Service
from trainflow.workflows.kubernetes import resources as k8s
from trainflow.workflows.local.cache_keys import pattern_files

MEMO_CONFIGMAP = "trainflow-step-cache"
MEMO_MAX_AGE = "720h"  # a cached step result older than 30 days runs again


def input_name(step: Step, ref: OutputRef) -> str:
    """The template input fed by `ref`: its key, or STEP-KEY when two upstream steps write the same key."""
    same_key = {r.step for r in step.output_refs() if r.key == ref.key}
    return ref.key if len(same_key) == 1 else f"{ref.step}-{ref.key}"


def step_run(step: Step) -> k8s.ContainerCommand:
    """The step's command with its placeholders as Argo expressions (outputs and the item via the template's inputs)."""

    def resolve(ref: Ref) -> str:
        if isinstance(ref, ParamRef):
            return k8s.workflow_param(ref.name)
        if isinstance(ref, OutputRef):
            return "{{inputs.parameters.%s}}" % input_name(step, ref)
        if isinstance(ref, ItemRef):
            return "{{inputs.parameters.%s}}" % item_input(ref)
        if isinstance(ref, WorkflowRef):
            return outcome(ref)
        if isinstance(ref, PortRef):
            assert isinstance(step, Service)
            return str(step.port(ref.name).container_port)
        assert isinstance(ref, HostRef)
        return "0.0.0.0"

    command = [substitute(a, resolve) for a in step.command]
    head = 3 if command[:2] == ["trainflow", "step"] else 1
    return k8s.ContainerCommand(command[:head], command[head:], own=True)


def item_input(ref: ItemRef) -> str:
    """The template input the item (`item`) or one of its fields (`item-FIELD`, fed by Argo's `{{item.FIELD}}`) is in."""
    return k8s.ITEM_INPUT if ref.field is None else f"{k8s.ITEM_INPUT}-{ref.field}"


def item_fields(step: Step) -> list[str]:
    """The item's fields the step reads (`{{item.lr}}`)."""
    return list(dict.fromkeys(r.field for r in step.refs() if isinstance(r, ItemRef) and r.field is not None))


# What Argo gives an exit handler: its status and duration, and in `workflow.failures` a JSON list of the failed
# nodes; the failed step is the first of them that ran a pod (the DAG's own node fails with it).
_FAILED = "jsonpath(workflow.failures, '$[?(@.podName != \"\")].%s')[0]"
_OUTCOME = {
    "name": "{{workflow.name}}",
    "pipeline": "{{workflow.labels.trainflow.io/pipeline}}",
    "status": "{{workflow.status}}",
    "duration": "{{workflow.duration}}",
    "failed_step": "{{=workflow.status == 'Succeeded' ? '' : %s}}" % (_FAILED % "displayName"),
    "failure_message": "{{=workflow.status == 'Succeeded' ? '' : %s}}" % (_FAILED % "message"),
}


def outcome(ref: WorkflowRef) -> str:
    """`{{workflow.status}}` and the rest of an exit step's placeholders as Argo fills them in its exit handler."""
    return _OUTCOME[ref.field]


def input_names(step: Step) -> list[str]:
    names = [input_name(step, r) for r in step.output_refs()]
    items = [k8s.ITEM_INPUT, *(f"{k8s.ITEM_INPUT}-{f}" for f in item_fields(step))] if step.for_each is not None else []
    return [*dict.fromkeys(names), *items]


def inputs(step: Step) -> dict[str, Any]:
    return {"parameters": [{"name": n} for n in input_names(step)]}


def task_arguments(step: Step) -> dict[str, Any]:
    params = [
        {"name": input_name(step, r), "value": "{{tasks.%s.outputs.parameters.%s}}" % (r.step, r.key)}
        for r in step.output_refs()
    ]
    if step.for_each is not None:
        params.append({"name": k8s.ITEM_INPUT, "value": "{{item}}"})
        params += [{"name": f"{k8s.ITEM_INPUT}-{f}", "value": "{{item.%s}}" % f} for f in item_fields(step)]
    return {"parameters": params}


def forwarded_arguments(step: Step) -> dict[str, Any]:
    return {"parameters": [{"name": n, "value": "{{inputs.parameters.%s}}" % n} for n in input_names(step)]}


def retry(step: Step) -> dict[str, Any]:
    strategy: dict[str, Any] = {
        "limit": str(step.retries),
        "retryPolicy": "Always",
        "backoff": {"duration": f"{step.backoff:g}s", "factor": "2"},
    }
    if step.retry_on == "transient":  # exit codes >= 128 are transient in trainflow (killed, unreachable)
        strategy["expression"] = "asInt(lastRetry.exitCode) >= 128"
    return {k: strategy[k] for k in ("limit", "retryPolicy", "expression", "backoff") if k in strategy}


def memoize(step: Step, pipeline: Pipeline, target: k8s.Target) -> dict[str, Any]:
    """Argo's memoization, keyed like the local cache: the command, its inputs and the parameters upstream used.

    Argo cannot read another step's key, so the parameters of every step this one waits for stand in for it.
    The code package and the step's `cache_key_files` and `cache_key_env` join the key as `compile_time_key` says.
    """
    keyed = [n for n in input_names(step) if n not in location_inputs(step, pipeline)]
    fixed, image_param = compile_time_key(step, pipeline, target)
    command = hashlib.sha256(json.dumps([__version__, step.kind, step.command, *fixed]).encode()).hexdigest()[:16]
    params = sorted({*upstream_params(step, pipeline), *image_param})
    parts = [
        f"'{command}'",
        *("inputs.parameters['%s']" % n for n in keyed),
        *("workflow.parameters['%s']" % name for name in params),
    ]
    return {
        "key": "%s-{{=sprig.sha256sum(%s)}}" % (step.name, " + '|' + ".join(parts)),
        "maxAge": MEMO_MAX_AGE,
        "cache": {"configMap": {"name": MEMO_CONFIGMAP, "key": step.name}},
    }  # Argo keys entries by `key` above


def compile_time_key(step: Step, pipeline: Pipeline, target: k8s.Target) -> tuple[list[Any], list[str]]:
    """What of the step's code, `cache_key_files` and `cache_key_env` is known when compiling: text to hash, parameters.

    The code package (its URL names its content's sha256) is the pipeline folder's code the pods import, as the
    local key covers that folder's `*.py`: an edited helper module runs the steps again. The files are on the
    compiling machine: their names and sha256 digests (read from the pipeline's folder, as the
    local runner does) are hashed into the key, never their content. A pod does not get the submitting shell's
    environment: a variable trainflow does not set comes from the image, so `cache_key_env` keys the image (a
    parameter's value at run time, or the literal name).
    """
    fixed: list[Any] = [target.options.code_package] if target.options.code_package else []
    if step.cache_key_files:
        base = Path(target.options.key_folder) if target.options.key_folder else Path.cwd()
        fixed.append(hashlib.sha256(json.dumps(pattern_files(base, step.cache_key_files)).encode()).hexdigest())
    if not step.cache_key_env:
        return fixed, []
    fixed.append(list(step.cache_key_env))
    image = step.image
    if isinstance(image, ParamRef) and image.name in target.params and target.values.get(image.name):
        return fixed, [image.name] if pipeline.param(image.name).cache_key else []
    return [*fixed, target.image(step)], []


def upstream_params(step: Step, pipeline: Pipeline) -> list[str]:
    """Parameters (that may change a result) read by `step` or any step before it."""
    seen, todo, names = set(), [step], []
    while todo:
        current = todo.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        refs = current.refs() + (parse_condition(current.when).refs() if current.when else [])
        if isinstance(current.for_each, ParamRef):
            refs.append(current.for_each)
        names += [r.name for r in refs if isinstance(r, ParamRef) and pipeline.param(r.name).cache_key]
        todo += [pipeline.step(d) for d in current.upstream()]
    return sorted(set(names))


def location_inputs(step: Step, pipeline: Pipeline) -> set[str]:
    return {input_name(step, r) for r in step.output_refs() if r.key in pipeline.step(r.step).locations}
