"""A pipeline as an Argo Workflow: one template per step, each running the step's own command.

Arguments render the spec's placeholders the way Argo resolves them: a parameter becomes
`{{workflow.parameters.NAME}}`, an earlier step's output an input parameter of the template (fed by
`{{tasks.STEP.outputs.parameters.KEY}}` in the DAG), the fan-out item an input parameter fed by
`{{item}}`, a port the container port, the host 0.0.0.0. The local runner resolves the very same
placeholders, so the two backends run the same commands. What a step is (a container, a training
job, a Deployment with a Service) comes from its kind, never from its name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from trainflow.pipelines import Pipeline, PipelineError, Step
from trainflow.pipelines.conditions import parse_condition
from trainflow.pipelines.refs import substitute
from trainflow.pipelines.roles import param_types, provided
from trainflow.pipelines.steps import Service, Train
from trainflow.pipelines.tuning import Tune
from trainflow.storage import is_shared
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import (
    exit_handler,
    kserve,
    manifest_values,
    node_cache,
    sizing,
    step_io,
    tracking_exit,
    trainjob,
)
from trainflow.workflows.kubernetes import resources as k8s
from trainflow.workflows.kubernetes.conditions import argo_when, compile_time_value
from trainflow.workflows.kubernetes.exit_steps import exit_dag, exit_step, on_exit
from trainflow.workflows.kubernetes.fan_out import cap, items_source
from trainflow.workflows.kubernetes.katib import tune_templates
from trainflow.workflows.kubernetes.options import ClusterOptions, check_object_values, check_steps
from trainflow.workflows.kubernetes.step_io import step_run
from trainflow.workflows.kubernetes.tracking_env import tracking_params
from trainflow.workflows.params import resolve_params, run_name

OUTPUTS_DIR = "/tmp/outputs/"  # steps write one file per output key here ($TRAINFLOW_OUTPUTS)
CACHE_TEMPLATE = "dataset-cache"
SERVICE_READY_SECONDS = 900


def complete_values(pipeline: Pipeline, given: Mapping[str, str]) -> dict[str, str]:
    """Validated parameters with the defaults a cluster run needs filled in."""
    declared = {p.name for p in pipeline.params}
    # A pipeline that declares no namespace parameter still runs in one: given, it is the backend's setting.
    values = resolve_params(pipeline, {k: v for k, v in given.items() if k in declared or k != "namespace"})
    if "namespace" not in values:
        values["namespace"] = given.get("namespace", "default")
    check_object_values(pipeline, values)
    return values


PIPELINE_LABEL = "trainflow.io/pipeline"
NAME_PARAM_ANNOTATION = "trainflow.io/name-param"
NAME_SUFFIX_ANNOTATION = "trainflow.io/name-suffix"
PARAM_TYPES_ANNOTATION = "trainflow.io/param-types"


def _common(template: dict[str, Any], step: Step, target: k8s.Target, pipeline: Pipeline, memoize: bool) -> None:
    if step_io.input_names(step):
        template["inputs"] = step_io.inputs(step)
    if step.retries:
        template["retryStrategy"] = step_io.retry(step)
    if step.timeout:
        template["activeDeadlineSeconds"] = int(step.timeout)
    if memoize and step.cacheable:
        template["memoize"] = step_io.memoize(step, pipeline, target)


def container_template(target: k8s.Target, step: Step, pipeline: Pipeline, memoize: bool) -> dict[str, Any]:
    sizing.check_fixed(step.name, target.resources(step))
    main = k8s.container(target, "main", step, step_run(step))
    main["env"].append({"name": "TRAINFLOW_OUTPUTS", "value": OUTPUTS_DIR})
    template: dict[str, Any] = {"name": step.name, "container": main}
    if step.outputs or step.artifacts or step.locations:
        template["outputs"] = {
            "parameters": [
                {"name": key, "valueFrom": {"path": f"{OUTPUTS_DIR}{key}"}} for key in step.declared_outputs()
            ]
        }
    _common(template, step, target, pipeline, memoize)
    return template


def _resource_template(
    name: str, obj: dict[str, Any], action: str, inputs: dict[str, Any] | None = None, owned: bool = False
) -> dict[str, Any]:
    resource: dict[str, Any] = {"action": action, "manifest": manifest_values.manifest(obj)}
    if owned:
        resource["setOwnerReference"] = True
    template: dict[str, Any] = {"name": name, "resource": resource}
    if inputs and inputs["parameters"]:
        template["inputs"] = inputs
    return template


def training_outputs_dir(step: Step) -> str:
    """Where the training pod hosting rank 0 writes the step's outputs: on the shared cache volume, per run and item."""
    item = "/{{inputs.parameters.%s}}" % k8s.ITEM_INPUT if step.for_each is not None else ""
    return f"{k8s.CACHE_MOUNT}/step-outputs/{{{{workflow.name}}}}/{step.name}{item}/"


def training_templates(
    target: k8s.Target, step: Train, job_kind: str, pipeline: Pipeline, memoize: bool
) -> list[dict[str, Any]]:
    """The training step as a PyTorchJob/TFJob/TrainJob the workflow creates and waits for (trainjob.py: through its JobSet).

    A step with outputs becomes two: the job, whose rank-0 pod writes them to the shared volume, then a
    container that reads them back as the step's output parameters. With a per-node cache there is no
    shared volume: each pod first syncs what it reads on its node, and the outputs are not read back.
    """
    if job_kind == "trainjob":
        runtime = trainjob.runtime(pipeline, target)
        job = trainjob.train_job(target, step_run(step), step, runtime, training_outputs_dir(step))
        outputs: tuple[str, ...] = step.declared_outputs()
    elif target.options.cache.mode == "per-node":
        init = node_cache.sync_containers(target, node_cache.seeds(pipeline, step), step_run)
        job = k8s.training_job(job_kind, target, step_run(step), step, None, init)
        outputs = ()
    else:
        job = k8s.training_job(job_kind, target, step_run(step), step, training_outputs_dir(step))
        outputs = step.declared_outputs()
    job_template = _resource_template(f"{step.name}-job" if outputs else step.name, job, "create", owned=True)
    if job_kind == "trainjob":
        if step_io.input_names(step):
            job_template["inputs"] = step_io.inputs(step)
        waited = trainjob.create_and_wait(job_template, target, step)
    else:
        success, failure = k8s.job_conditions(target, step)
        job_template["resource"].update(successCondition=success, failureCondition=failure)
        waited = [job_template]
    job_template = waited[0]
    if not outputs:
        _common(job_template, step, target, pipeline, memoize)
        return waited
    if step_io.input_names(step):
        job_template["inputs"] = step_io.inputs(step)
    read = {
        "name": f"{step.name}-outputs",
        "container": k8s.outputs_reader(target, step, training_outputs_dir(step), OUTPUTS_DIR),
        "outputs": {"parameters": [{"name": key, "valueFrom": {"path": f"{OUTPUTS_DIR}{key}"}} for key in outputs]},
    }
    if step.for_each is not None:
        read["inputs"] = {"parameters": [{"name": k8s.ITEM_INPUT}]}
    calls: list[dict[str, Any]] = [
        {"name": "job", "template": job_template["name"]},
        {"name": "outputs", "template": read["name"]},
    ]
    if step_io.input_names(step):
        calls[0]["arguments"] = step_io.forwarded_arguments(step)
    if step.for_each is not None:
        calls[1]["arguments"] = {
            "parameters": [{"name": k8s.ITEM_INPUT, "value": "{{inputs.parameters.%s}}" % k8s.ITEM_INPUT}]
        }
    group: dict[str, Any] = {
        "name": step.name,
        "steps": [[calls[0]], [calls[1]]],
        "outputs": {
            "parameters": [
                {"name": key, "valueFrom": {"parameter": "{{steps.outputs.outputs.parameters.%s}}" % key}}
                for key in outputs
            ]
        },
    }
    _common(group, step, target, pipeline, memoize)
    group.pop("retryStrategy", None)  # the job template retries, the reading does not need to
    if step.retries:
        job_template["retryStrategy"] = step_io.retry(step)
    return [group, *waited, read]


def service_templates(target: k8s.Target, step: Service) -> list[dict[str, Any]]:
    """A service step: apply its Deployment, then its Service (or its KServe InferenceService); they outlive the workflow."""
    if step.name in target.options.inference_services:
        return [_inference_service_template(target, step)]
    parts = [
        _resource_template(
            f"{step.name}-deployment", k8s.deployment(target, step, step_run(step)), "apply", step_io.inputs(step)
        ),
        _resource_template(f"{step.name}-service", k8s.service(target, step), "apply"),
    ]
    # Like the local runner, a service step succeeds once it serves: here, once its readiness probe passes.
    parts[0]["resource"]["successCondition"] = "status.readyReplicas > 0"
    parts[0]["activeDeadlineSeconds"] = (
        int(step.ready_timeout) if step.ready_timeout != 180.0 else SERVICE_READY_SECONDS
    )
    apply_deployment: dict[str, Any] = {"name": "deployment", "template": parts[0]["name"]}
    group: dict[str, Any] = {
        "name": step.name,
        "steps": [[apply_deployment], [{"name": "service", "template": parts[1]["name"]}]],
    }
    if step_io.input_names(step):
        apply_deployment["arguments"] = step_io.forwarded_arguments(step)
        group["inputs"] = step_io.inputs(step)
    return [group, *parts]


def _inference_service_template(target: k8s.Target, step: Service) -> dict[str, Any]:
    """Apply the InferenceService; the step succeeds once KServe reports the model loaded."""
    isvc = kserve.inference_service(target, step, step_run(step))
    template = _resource_template(step.name, isvc, "apply", step_io.inputs(step))
    template["resource"].update(successCondition=kserve.READY, failureCondition=kserve.FAILED)
    template["activeDeadlineSeconds"] = (
        int(step.ready_timeout) if step.ready_timeout != 180.0 else SERVICE_READY_SECONDS
    )
    return template


def _task(step: Step, pipeline: Pipeline, claim: bool) -> dict[str, Any]:
    task: dict[str, Any] = {"name": step.name, "template": step.name}
    depends = _depends(step, claim)
    if depends:
        task["depends"] = depends
    if step_io.input_names(step):
        task["arguments"] = step_io.task_arguments(step)
    if step.when:
        task["when"] = argo_when(parse_condition(step.when), pipeline)
    task.update(items_source(step))
    return task


def _depends(step: Step, claim: bool) -> str | None:
    names = dict.fromkeys([*([CACHE_TEMPLATE] if claim else []), *step.upstream()])
    return " && ".join(f"{name}.Succeeded" for name in names) or None


def included_steps(pipeline: Pipeline, values: Mapping[str, str]) -> list[Step]:
    """Steps the workflow contains: a step whose condition reads only parameters and is false is left out."""
    return [
        s for s in pipeline.order() if not s.when or compile_time_value(parse_condition(s.when), values) is not False
    ]


def templates(pipeline: Pipeline, target: k8s.Target, job_kind: str, memoize: bool = True) -> list[dict[str, Any]]:
    check_steps(pipeline, target.options)
    steps = included_steps(pipeline, target.values)
    if target.options.cache.mode == "per-node":
        node_cache.check_unread_outputs(steps)
    claim = target.options.cache.mode == "shared"
    tasks = [_task(s, pipeline, claim) for s in steps]
    capped = cap(steps, tasks)
    dag = {
        "name": pipeline.name,
        "dag": {"tasks": [{"name": CACHE_TEMPLATE, "template": CACHE_TEMPLATE}, *tasks] if claim else tasks},
    }
    result = [dag, *capped]
    if claim:
        result.append(_resource_template(CACHE_TEMPLATE, k8s.cache_claim(target), "apply"))
    for step in steps:
        if isinstance(step, Service):
            result += service_templates(target, step)
        elif isinstance(step, Tune):
            result += tune_templates(target, step, job_kind, pipeline)
        elif isinstance(step, Train):
            result += training_templates(target, step, job_kind, pipeline, memoize)
        else:
            result.append(container_template(target, step, pipeline, memoize))
    trainers = [s for s in steps if isinstance(s, Train)]
    if trainers:
        result += exit_handler.cleanup_templates(target, job_kind, trainers)
    for step in pipeline.exit_order():
        result.append(exit_step(container_template(target, step, pipeline, memoize=False), step))
    ended = tracking_exit.end_run_templates(target, steps)  # a tracked workflow's MLflow run ends with it
    end_run = ended[0]["name"] if ended else ""
    return [*result, *ended, *exit_dag(pipeline, cleanup=bool(trainers), end_run=end_run)]


def step_summary(pipeline: Pipeline) -> str:
    """What `get` needs to list a workflow's steps without the pipeline at hand (an annotation)."""
    return json.dumps(
        [
            {
                "name": s.name,
                "service": s.service,
                "when": bool(s.when),
                "depends": list(s.upstream()),
                "kind": s.kind,
                **({"provides": provides} if (provides := provided(s)) else {}),
            }
            for s in pipeline.all_steps
        ],
        separators=(",", ":"),
    )


def name_expression(pipeline: Pipeline) -> str:
    """The run's name as Argo fills it in: from the name parameter (so `-p job-name=...` renames the objects)."""
    if pipeline.name_param is None:
        return "{{workflow.name}}"
    return k8s.workflow_param(pipeline.name_param) + pipeline.name_suffix


def _check_artifacts_url(pipeline: Pipeline, values: Mapping[str, str]) -> None:
    """Steps that publish artifacts need a store every pod reaches: an s3:// URL (pods share no disk)."""
    publishing = [s.name for s in pipeline.steps if s.artifacts and getattr(s, "function", None)]
    if not publishing:
        return
    url = substitute(str(pipeline.artifacts_url), lambda ref: values.get(getattr(ref, "name", ""), ""))
    if not is_shared(url):
        raise WorkflowError(
            f"step {publishing[0]} publishes artifacts, and on Kubernetes pods share no disk: give {pipeline.name} "
            f"an artifacts_url of s3://BUCKET/PREFIX (now {url or 'unset'}), e.g. Pipeline(artifacts_url=param(...))"
        )


def workflow(
    pipeline: Pipeline,
    values: Mapping[str, str],
    job_kind: str = "pytorchjob",
    memoize: bool = True,
    options: ClusterOptions | None = None,
) -> dict[str, Any]:
    """The Argo Workflow for `pipeline` with already completed `values` (see `complete_values`)."""
    if job_kind not in k8s.JOB_KINDS:
        raise WorkflowError(f"unknown job kind '{job_kind}': use {' or '.join(k8s.JOB_KINDS)}")
    options = options or ClusterOptions()
    name = run_name(pipeline, values)  # None: Argo names the run after the pipeline, with a suffix
    declared = frozenset(p.name for p in pipeline.params)
    _check_artifacts_url(pipeline, values)
    secret = next((p.name for p in pipeline.params if p.type == "secret-name"), "")
    tracking = tracking_params(pipeline.params, pipeline.name)
    target = k8s.Target(
        name_expression(pipeline), values, declared, options, str(pipeline.artifacts_url), secret, tracking
    )
    try:
        all_templates = templates(pipeline, target, job_kind, memoize)
    except PipelineError as exc:
        raise WorkflowError(exc.message) from None
    spec: dict[str, Any] = {
        "entrypoint": pipeline.name,
        "serviceAccountName": options.service_account,
        "arguments": {"parameters": [{"name": p.name, "value": values[p.name]} for p in pipeline.params]},
        "volumes": [k8s.cache_volume(options)],
        "templates": all_templates,
        **options.pod_extras(),
    }
    handler = on_exit(all_templates)
    if handler:
        spec["onExit"] = handler
    if pipeline.parallelism is not None:
        spec["parallelism"] = pipeline.parallelism
    spec["podGC"] = exit_handler.pod_gc()
    labels = {**k8s.MANAGED_BY, PIPELINE_LABEL: pipeline.name, "trainflow.io/job-kind": job_kind}
    meta: dict[str, Any] = {"name": name} if name else {"generateName": f"{pipeline.name}-"}
    meta.update(
        {
            "namespace": values["namespace"],
            "labels": labels,
            "annotations": {
                "trainflow.io/steps": step_summary(pipeline),
                PARAM_TYPES_ANNOTATION: json.dumps(param_types(pipeline), separators=(",", ":")),
                # what `trainflow resubmit` needs to name a copy of this run as the pipeline would
                NAME_PARAM_ANNOTATION: pipeline.name_param or "",
                NAME_SUFFIX_ANNOTATION: pipeline.name_suffix,
            },
        }
    )
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": meta, "spec": spec}
