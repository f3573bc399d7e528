"""A tracked workflow's MLflow run on the cluster: what each pod finds it by, and the exit handler step that ends it.

No process sees a compiled workflow start, so its pods share the workflow's run through Argo's own variables: the
workflow's uid (the key `trainflow.tracking.cluster_run` finds or creates the run by), its name and the pipeline's.
The exit handler's `mlflow-end-run` container ends the run FINISHED or FAILED by `{{workflow.status}}`, logging the
workflow's parameters (`{{workflow.parameters.json}}`: names and values, never credentials, which stay in Secrets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainflow.pipelines import Step
from trainflow.pipelines.artifacts import ENV as ARTIFACTS_ENV
from trainflow.pipelines.programs import STEP
from trainflow.tracking.cluster_run import PARAMS_ENV
from trainflow.workflows.kubernetes import resources as k8s
from trainflow.workflows.kubernetes.tracking_env import URI_VAR

END_TEMPLATE = "mlflow-end-run"


def end_run_templates(target: k8s.Target, steps: Sequence[Step]) -> list[dict[str, Any]]:
    """The exit handler's container that ends the workflow's run, in the image of its first trainflow step; none when
    the pods do not track (no tracking server given) or no step runs trainflow."""
    if not any(env["name"] == URI_VAR for env in k8s.container_env(target)):
        return []
    step = next((s for s in steps if tuple(s.command[:2]) == STEP), None)
    if step is None:
        return []
    end = k8s.ContainerCommand([*STEP, "mlflow-end-run"], ["--status", "{{workflow.status}}"])
    main = k8s.container(target, "main", step, end)
    main.pop("resources", None)  # a few requests to the tracking server need no GPU
    main["env"] = [e for e in main["env"] if e["name"] != ARTIFACTS_ENV]
    main["env"].append({"name": PARAMS_ENV, "value": "{{workflow.parameters.json}}"})
    return [{"name": END_TEMPLATE, "container": main}]
