"""A `Tune` step as a Katib Experiment (kubeflow.org/v1beta1) the workflow creates and waits for.

The trial template is the PyTorchJob or TFJob the trial step compiles to, its tuned arguments written as
`${trialParameters.NAME}`. Katib's metrics collector runs the trial container's command through `sh -c`
(joining its words with spaces), so the container runs a fixed script whose every argument is an
environment variable (`"$TRAINFLOW_ARG_3"`): a value is data there too, never shell text. The trainer's
log lines `... accuracy=0.91 loss=0.3` are what Katib's StdOut collector reads.

Names: algorithm random, grid, tpe, cmaes are Katib's own; early stopping `median` is Katib's `medianstop`;
`hyperband` is a search algorithm in Katib that sets the trial's training budget itself (the Tune step's
`budget_param`), so it replaces the algorithm. A time budget has no Katib equivalent and is refused.
After the Experiment, a container (`trainflow step tune-result`) turns `status.currentOptimalTrial` into
the step's outputs, as the local study writes them.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from trainflow.pipelines import Pipeline
from trainflow.pipelines.refs import ParamRef, substitute
from trainflow.pipelines.search_space import CHOICE, FLOAT, INT, Dimension
from trainflow.pipelines.steps import Train
from trainflow.pipelines.tuning import ARG_PARAM, ARG_TRAIN_DIR, StudySettings, Tune, trial_args
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import code_entry, manifest_values, step_io
from trainflow.workflows.kubernetes import resources as k8s

API_VERSION = "kubeflow.org/v1beta1"
ARG_ENV = "TRAINFLOW_ARG_"
TRIAL_NAME = "trialName"  # a trial parameter: the trial's name (its train dir is <train dir>/trials/<name>)
PRIMARY = {"pytorchjob": "pytorch", "tfjob": "tensorflow"}
ALGORITHM_SEED = {"random": "random_state", "tpe": "random_state", "cmaes": "random_state"}
CONDITION = 'status.conditions.#(type=="{}")#|#(status=="True")#'
# What Katib may write into a trial's spec unquoted: numbers and plain words (its substitution is textual).
SAFE_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@%+=,-]{0,252}")
BEST = "status.currentOptimalTrial.bestTrialName"
STATUS_OUTPUTS = {  # the Experiment's status, read when it ends, and what tune-result makes of it
    "best-trial-name": "{.status.currentOptimalTrial.bestTrialName}",
    "assignments": "{.status.currentOptimalTrial.parameterAssignments}",
    "observation": "{.status.currentOptimalTrial.observation}",
}


def tune_templates(target: k8s.Target, step: Tune, job_kind: str, pipeline: Pipeline) -> list[dict[str, Any]]:
    """The step as a steps group: create the Experiment and wait for it, then read its best trial."""
    if job_kind not in PRIMARY:
        raise WorkflowError(
            f"step {step.name}: a study compiles to a Katib Experiment over a PyTorchJob or TFJob: "
            "use --job-kind pytorchjob or tfjob"
        )
    settings = step.settings(target.values)
    if settings.time_budget is not None:
        raise WorkflowError(
            f"step {step.name}: a time budget has no Katib equivalent: leave it empty on Kubernetes (max trials bound it)"
        )
    experiment = _experiment(target, step, settings, job_kind)
    create: dict[str, Any] = {
        "name": f"{step.name}-experiment",
        "resource": {
            "action": "create",
            "setOwnerReference": True,
            "manifest": manifest_values.manifest(experiment),
            # Katib ends the Experiment when max trials ran: with a best trial, or with every trial failed.
            "successCondition": f"status.completionTime, {BEST}",
            "failureCondition": f"status.completionTime, !{BEST}",
        },
        "outputs": {"parameters": [{"name": k, "valueFrom": {"jsonPath": v}} for k, v in STATUS_OUTPUTS.items()]},
    }
    if step_io.input_names(step):
        create["inputs"] = step_io.inputs(step)
    result = _result_template(target, step, settings)
    calls: list[dict[str, Any]] = [{"name": "experiment", "template": create["name"]}]
    if step_io.input_names(step):
        calls[0]["arguments"] = step_io.forwarded_arguments(step)
    read = {"name": "result", "template": result["name"], "arguments": {"parameters": _result_arguments(step)}}
    group: dict[str, Any] = {
        "name": step.name,
        "steps": [calls, [read]],
        "outputs": {
            "parameters": [
                {"name": key, "valueFrom": {"parameter": "{{steps.result.outputs.parameters.%s}}" % key}}
                for key in step.declared_outputs()
            ]
        },
    }
    if step_io.input_names(step):
        group["inputs"] = step_io.inputs(step)
    return [group, create, result]


def experiment_name(target: k8s.Target, step: Tune) -> str:
    return k8s.object_name(target, step)


def _experiment(target: k8s.Target, step: Tune, settings: StudySettings, job_kind: str) -> dict[str, Any]:
    tuned = {d.name: d for d in settings.dimensions}
    budget = str(step.budget_param)
    hyperband = settings.early_stopping == "hyperband"
    if hyperband:
        tuned[budget] = _budget_dimension(target, step)
    names = {name: _trial_parameter(name) for name in tuned}
    spec: dict[str, Any] = {
        "objective": {
            "type": settings.direction,
            "objectiveMetricName": settings.objective,
            "metricStrategies": [{"name": settings.objective, "value": "latest"}],
        },
        "algorithm": _algorithm(settings, budget, tuned.get(budget)) if hyperband else _algorithm(settings),
        # The counts stay parameters (`argo submit -p max-trials=N` sizes the study); the search is fixed at compile.
        "parallelTrialCount": target.count(str(step.parallel_trials), f"{step.name} parallel trials"),
        "maxTrialCount": target.count(str(step.max_trials), f"{step.name} max trials"),
        "maxFailedTrialCount": target.count(str(step.max_trials), f"{step.name} max trials"),
        "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
        "parameters": [_parameter(d) for d in tuned.values()],
        "trialTemplate": {
            "primaryContainerName": PRIMARY[job_kind],
            "primaryPodLabels": {
                "training.kubeflow.org/replica-type": "worker",
                "training.kubeflow.org/replica-index": "0",
            },
            "successCondition": CONDITION.format("Succeeded"),
            "failureCondition": CONDITION.format("Failed"),
            "trialParameters": [
                *({"name": names[n], "reference": n, "description": f"parameter {n}"} for n in tuned),
                {"name": TRIAL_NAME, "reference": "${trialSpec.Name}", "description": "the trial's name"},
            ],
            "trialSpec": trial_job(target, step, job_kind, names),
        },
    }
    if settings.early_stopping == "median":
        spec["earlyStopping"] = {
            "algorithmName": "medianstop",
            "algorithmSettings": [{"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "1"}],
        }
    meta = {
        "name": experiment_name(target, step),
        "namespace": target.namespace,
        "labels": k8s.labels(target, step.name),
    }
    return {"apiVersion": API_VERSION, "kind": "Experiment", "metadata": meta, "spec": spec}


def trial_job(target: k8s.Target, step: Tune, job_kind: str, names: dict[str, str]) -> dict[str, Any]:
    """The trial step's job, tuned arguments as `${trialParameters.X}`, each argument in an environment variable."""
    argv = []
    for how, text in trial_args(step.trial):
        name = how[len(ARG_PARAM) :] if how.startswith(ARG_PARAM) else ""
        if name in names:
            argv.append("${trialParameters.%s}" % names[name])
        elif how == ARG_TRAIN_DIR:
            argv.append(text + "/trials/${trialParameters.%s}" % TRIAL_NAME)
        else:
            argv.append(text)
    trial: Train = replace(step.trial, name=step.name, function=None, inputs=(), argv=tuple(argv))
    run = step_io.step_run(trial)
    command, args = code_entry.entry(target.options, trial, run.command, run.args, run.own)  # a script: its package
    words = [*command, *args]
    script = " ".join(f'"${ARG_ENV}{i}"' for i in range(len(words)))
    job = k8s.training_job(job_kind, target, k8s.ContainerCommand(["sh", "-c"], [script]), trial)
    job["metadata"].pop("name")  # Katib names each trial's job after the trial
    replicas = job["spec"]["pytorchReplicaSpecs" if job_kind == "pytorchjob" else "tfReplicaSpecs"]
    for replica in replicas.values():
        for container in replica["template"]["spec"]["containers"]:
            container["env"] += [{"name": f"{ARG_ENV}{i}", "value": w} for i, w in enumerate(words)]
    return job


def _parameter(d: Dimension) -> dict[str, Any]:
    if d.type == CHOICE:
        for value in d.values:
            if not SAFE_VALUE.fullmatch(value):
                raise WorkflowError(
                    f"search space: '{d.name}' value '{value[:40]}' cannot reach a Katib trial as is: "
                    "use letters, digits and . _ : / @ % + = , -"
                )
        return {"name": d.name, "parameterType": "categorical", "feasibleSpace": {"list": list(d.values)}}
    if d.type == INT:
        space = {"min": str(int(d.low)), "max": str(int(d.high)), "step": str(d.step)}
    else:
        space = {"min": repr(d.low), "max": repr(d.high)}
    space["distribution"] = "logUniform" if d.log else "uniform"
    return {"name": d.name, "parameterType": "double" if d.type == FLOAT else "int", "feasibleSpace": space}


def _algorithm(settings: StudySettings, budget: str = "", dimension: Dimension | None = None) -> dict[str, Any]:
    if dimension is not None:  # Katib's hyperband: it sets the budget parameter of each bracket's trials
        hyperband = [("resource_name", budget), ("eta", "3"), ("r_l", str(int(dimension.high)))]
        return {"algorithmName": "hyperband", "algorithmSettings": [{"name": k, "value": v} for k, v in hyperband]}
    found: dict[str, Any] = {"algorithmName": settings.algorithm}
    if settings.algorithm in ALGORITHM_SEED:
        found["algorithmSettings"] = [{"name": ALGORITHM_SEED[settings.algorithm], "value": str(settings.seed)}]
    return found


def _budget_dimension(target: k8s.Target, step: Tune) -> Dimension:
    budget = str(step.budget_param)
    if not budget:
        raise WorkflowError(
            f"step {step.name}: early stopping hyperband is a search algorithm in Katib that sets how long each trial "
            "trains: give the Tune step budget_param=... (the trial's training-steps parameter), or use median"
        )
    steps = target.values.get(budget, "")
    if not steps.isdigit() or int(steps) < 2:
        raise WorkflowError(f"step {step.name}: budget parameter {budget} is '{steps[:40]}': give a whole number >= 2")
    return Dimension(budget, INT, low=1, high=int(steps))


def _trial_parameter(name: str) -> str:
    """A Katib trial parameter's name for a pipeline parameter: model-learning-rate -> modelLearningRate."""
    head, *rest = re.split(r"[-_]", name)
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _result_template(target: k8s.Target, step: Tune, settings: StudySettings) -> dict[str, Any]:
    names = ["trials-under", *STATUS_OUTPUTS]
    flags = {"trials-under": "--train-dir", **{n: f"--{n}" for n in STATUS_OUTPUTS}}
    args = ["--objective", settings.objective, *(t for n in names for t in (flags[n], "{{inputs.parameters.%s}}" % n))]
    container = k8s.container(target, "main", step, k8s.ContainerCommand(["trainflow", "step", "tune-result"], args))
    container.pop("resources", None)  # reading a status needs no GPU
    container["env"].append({"name": "TRAINFLOW_OUTPUTS", "value": "/tmp/outputs/"})
    return {
        "name": f"{step.name}-result",
        "inputs": {"parameters": [{"name": n} for n in names]},
        "container": container,
        "outputs": {
            "parameters": [
                {"name": key, "valueFrom": {"path": f"/tmp/outputs/{key}"}} for key in step.declared_outputs()
            ]
        },
    }


def _result_arguments(step: Tune) -> list[dict[str, str]]:
    def value(ref: object) -> str:
        if isinstance(ref, ParamRef):
            return k8s.workflow_param(ref.name)
        return "{{inputs.parameters.%s}}" % step_io.input_name(step, ref)  # type: ignore[arg-type]

    train_dir = substitute(str(step.trial.train_dir), value) if step.trial.train_dir else ""
    found = [{"name": "trials-under", "value": train_dir}]
    found += [{"name": k, "value": "{{steps.experiment.outputs.parameters.%s}}" % k} for k in STATUS_OUTPUTS]
    return found
