"""A pipeline as an Argo Workflow: one template per step, each running the step's own command.

Arguments render the spec's tokens the way Argo resolves them: a parameter becomes
`{{workflow.parameters.NAME}}`, an earlier step's output an input parameter of the template (fed by
`{{tasks.STEP.outputs.parameters.KEY}}` in the DAG), a port the container port. The local runner
resolves the very same tokens, so the two backends run the same commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import resources as k8s
from trainflow.workflows.kubernetes import yamltext
from trainflow.workflows.params import resolve_params
from trainflow.workflows.spec import OutputRef, ParamRef, Pipeline, PortRef, Step, render_args

OUTPUTS_DIR = "/tmp/outputs/"  # steps write one file per output key here (write_outputs' directory form)
CACHE_TEMPLATE = "dataset-cache"
CLEANUP_TEMPLATE = "cleanup"
# Appended after the step's own arguments (like the local runner's `--outputs FILE`): where outputs go,
# and, for services, listening on the pod's address rather than loopback.
STEP_PLUMBING = ("--outputs", OUTPUTS_DIR)
SERVICE_PLUMBING = ("--host", "0.0.0.0")
SERVICE_READY_SECONDS = 900


def complete_values(pipeline: Pipeline, given: Mapping[str, str]) -> dict[str, str]:
    """Validated parameters with the defaults a cluster run needs filled in."""
    from trainflow.datasets import DEFAULT_MNIST_URL

    values = resolve_params(pipeline, given)
    if "s3-data-url" in values and not values["s3-data-url"]:
        values["s3-data-url"] = DEFAULT_MNIST_URL
    if "tf-ps" in values:
        if not values["tf-ps"].isdigit():
            raise WorkflowError(f"parameter tf-ps must be a whole number of at least 0, not '{values['tf-ps']}'")
        values["tf-ps"] = str(int(values["tf-ps"]))
    return values


def workflow_name(pipeline: Pipeline, values: Mapping[str, str]) -> str:
    return f"{values[pipeline.name_param]}{pipeline.name_suffix}"


def input_name(ref: OutputRef) -> str:
    return ref.key


def step_run(step: Step, plumbing: tuple[str, ...] = ()) -> k8s.ContainerCommand:
    """The step's command with its references as Argo expressions (outputs via the template's inputs)."""

    def resolve(ref: ParamRef | OutputRef | PortRef) -> str:
        if isinstance(ref, ParamRef):
            return k8s.workflow_param(ref.name)
        if isinstance(ref, OutputRef):
            return "{{inputs.parameters.%s}}" % input_name(ref)
        return str(next(p.container_port for p in step.ports if p.name == ref.name))

    return k8s.ContainerCommand(list(step.command), [*render_args(step, resolve), *plumbing])


def _inputs(step: Step) -> dict[str, Any]:
    return {"parameters": [{"name": input_name(r)} for r in step.refs()]}


def _task_arguments(step: Step) -> dict[str, Any]:
    return {"parameters": [{"name": input_name(r), "value": "{{tasks.%s.outputs.parameters.%s}}" % (r.step, r.key)}
                           for r in step.refs()]}


def _forwarded_arguments(step: Step) -> dict[str, Any]:
    return {"parameters": [{"name": input_name(r), "value": "{{inputs.parameters.%s}}" % input_name(r)}
                           for r in step.refs()]}


def _retry(step: Step) -> dict[str, Any]:
    # Exit codes >= 128 are transient in trainflow (killed, unreachable): retry those, not bad input.
    return {"limit": str(step.retries), "retryPolicy": "Always",
            "expression": "asInt(lastRetry.exitCode) >= 128", "backoff": {"duration": "10s", "factor": "2"}}


def container_template(target: k8s.Target, step: Step) -> dict[str, Any]:
    run = step_run(step, STEP_PLUMBING)
    main = k8s.container(target, "main", step, run)
    template: dict[str, Any] = {"name": step.name, "container": main}
    if step.refs():
        template["inputs"] = _inputs(step)
    if step.outputs:
        template["outputs"] = {"parameters": [{"name": key, "valueFrom": {"path": f"{OUTPUTS_DIR}{key}"}}
                                              for key in step.outputs]}
    if step.retries:
        template["retryStrategy"] = _retry(step)
    return template


def _resource_template(name: str, obj: dict[str, Any], action: str, inputs: dict[str, Any] | None = None,
                       owned: bool = False) -> dict[str, Any]:
    resource: dict[str, Any] = {"action": action, "manifest": yamltext.dump(obj)}
    if owned:
        resource["setOwnerReference"] = True
    template: dict[str, Any] = {"name": name, "resource": resource}
    if inputs and inputs["parameters"]:
        template["inputs"] = inputs
    return template


def training_template(target: k8s.Target, step: Step, job_kind: str) -> dict[str, Any]:
    """The training step as a PyTorchJob/TFJob the workflow creates and waits for."""
    job = k8s.training_job(job_kind, target, step_run(step), step)
    template = _resource_template(step.name, job, "create", _inputs(step), owned=True)
    success, failure = k8s.job_conditions(job_kind, int(target.values["tf-worker"]))
    template["resource"].update(successCondition=success, failureCondition=failure)
    return template


def service_templates(target: k8s.Target, step: Step) -> list[dict[str, Any]]:
    """A service step: apply its Deployment, then its Service; both outlive the workflow."""
    run = step_run(step, SERVICE_PLUMBING)
    parts = [
        _resource_template(f"{step.name}-deployment", k8s.deployment(target, step, run), "apply", _inputs(step)),
        _resource_template(f"{step.name}-service", k8s.service(target, step), "apply"),
    ]
    # Like the local runner, a service step succeeds once it serves: here, once its readiness probe passes.
    parts[0]["resource"]["successCondition"] = "status.readyReplicas > 0"
    parts[0]["activeDeadlineSeconds"] = SERVICE_READY_SECONDS
    apply_deployment: dict[str, Any] = {"name": "deployment", "template": parts[0]["name"]}
    group: dict[str, Any] = {"name": step.name,
                             "steps": [[apply_deployment], [{"name": "service", "template": parts[1]["name"]}]]}
    if step.refs():
        apply_deployment["arguments"] = _forwarded_arguments(step)
        group["inputs"] = _inputs(step)
    return [group, *parts]


def _task(step: Step) -> dict[str, Any]:
    task: dict[str, Any] = {"name": step.name, "template": step.name, "depends": _depends(step)}
    if step.refs():
        task["arguments"] = _task_arguments(step)
    if step.when:
        task["when"] = "{{workflow.parameters.%s}} == true" % step.when
    return task


def _depends(step: Step) -> str:
    upstream = [CACHE_TEMPLATE, *step.depends, *(r.step for r in step.refs() if r.step not in step.depends)]
    return " && ".join(f"{name}.Succeeded" for name in dict.fromkeys(upstream))


def included_steps(pipeline: Pipeline, values: Mapping[str, str]) -> list[Step]:
    """Steps the workflow contains: a step whose `when` parameter is false is left out entirely."""
    return [s for s in pipeline.order() if not s.when or values.get(s.when) == "true"]


def _cleanup_templates(target: k8s.Target, job_kind: str) -> list[dict[str, Any]]:
    """Exit handler: a workflow that did not succeed deletes its training job (and so its pods)."""
    kind = "PyTorchJob" if job_kind == "pytorchjob" else "TFJob"
    job = {"apiVersion": "kubeflow.org/v1", "kind": kind, "metadata": {"name": target.workflow, "namespace": target.namespace}}
    delete = _resource_template("delete-training-job", job, "delete")
    delete["resource"]["flags"] = ["--ignore-not-found"]
    group = {"name": CLEANUP_TEMPLATE, "steps": [[{"name": "delete-training-job", "template": "delete-training-job",
                                                   "when": "{{workflow.status}} != Succeeded"}]]}
    return [group, delete]


def templates(pipeline: Pipeline, target: k8s.Target, job_kind: str) -> list[dict[str, Any]]:
    steps = included_steps(pipeline, target.values)
    dag = {"name": pipeline.name, "dag": {"tasks": [
        {"name": CACHE_TEMPLATE, "template": CACHE_TEMPLATE}, *(_task(s) for s in steps)]}}
    result = [dag, _resource_template(CACHE_TEMPLATE, k8s.cache_claim(target.namespace), "apply")]
    for step in steps:
        if step.service:
            result += service_templates(target, step)
        elif step.name == "train-model":
            result.append(training_template(target, step, job_kind))
        else:
            result.append(container_template(target, step))
    if any(s.name == "train-model" for s in steps):
        result += _cleanup_templates(target, job_kind)
    return result


def workflow(pipeline: Pipeline, values: Mapping[str, str], job_kind: str = "pytorchjob") -> dict[str, Any]:
    """The Argo Workflow for `pipeline` with already completed `values` (see `complete_values`)."""
    if job_kind not in k8s.JOB_KINDS:
        raise WorkflowError(f"unknown job kind '{job_kind}': use {' or '.join(k8s.JOB_KINDS)}")
    name = workflow_name(pipeline, values)
    all_templates = templates(pipeline, k8s.Target(name, values), job_kind)
    spec: dict[str, Any] = {
        "entrypoint": pipeline.name,
        "serviceAccountName": k8s.SERVICE_ACCOUNT,
        "arguments": {"parameters": [{"name": p.name, "value": values[p.name]} for p in pipeline.params]},
        "volumes": [k8s.cache_volume()],
        "templates": all_templates,
    }
    if any(t["name"] == CLEANUP_TEMPLATE for t in all_templates):
        spec["onExit"] = CLEANUP_TEMPLATE
    labels = {**k8s.MANAGED_BY, "trainflow.io/pipeline": pipeline.name, "trainflow.io/job-kind": job_kind}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name, "namespace": values["namespace"], "labels": labels},
            "spec": spec}
