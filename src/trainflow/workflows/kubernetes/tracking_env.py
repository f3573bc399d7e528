"""MLflow tracking in a compiled workflow's pods: the server from a parameter or a Secret, credentials only from it.

The pipeline's `tracking-secret` parameter (built-ins: `-p mlflow-secret=NAME`) names a Secret holding
MLFLOW_TRACKING_URI (required: a pod without it would track nowhere) and, optionally, the credentials MLflow's
client reads. Nothing of them is ever inline in the compiled YAML (`strict.py` refuses it). A `tracking-uri`
parameter (`-p mlflow-tracking-uri=`, checked to hold no credentials) gives the URI itself and wins over the Secret's
(whose credentials still apply); a `tracking-experiment` parameter gives MLFLOW_EXPERIMENT_NAME. Both reach a pod as
a workflow parameter placeholder: data that Argo fills in, JSON-quoted in a manifest (`manifest_values.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trainflow.pipelines.params import Param
from trainflow.tracking.cluster_run import PIPELINE_ENV, WORKFLOW_NAME_ENV, WORKFLOW_UID_ENV

URI_VAR = "MLFLOW_TRACKING_URI"
EXPERIMENT_VAR = "MLFLOW_EXPERIMENT_NAME"
CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
VARS = (URI_VAR, *CREDENTIAL_VARS)  # the Secret's keys are the variables' own names


@dataclass(frozen=True)
class TrackingParams:
    """The names of a pipeline's tracking parameters ('' where it has none)."""

    secret: str = ""
    uri: str = ""
    experiment: str = ""
    pipeline: str = ""  # the pipeline's name: the experiment of its workflows' runs, unless one is given


def tracking_params(params: Sequence[Param], pipeline: str = "") -> TrackingParams:
    """Which of `params` are the Secret, the URI and the experiment, by their types (of pipeline `pipeline`)."""

    def of(type_: str) -> str:
        return next((p.name for p in params if p.type == type_), "")

    return TrackingParams(of("tracking-secret"), of("tracking-uri"), of("tracking-experiment"), pipeline)


def tracking_env(params: TrackingParams, setting: Callable[[str, str], str]) -> list[dict[str, Any]]:
    """The env entries a pod tracks with; `setting(name, '')` gives a parameter's placeholder, '' where it is unset."""
    secret, uri, experiment = (setting(n, "") if n else "" for n in (params.secret, params.uri, params.experiment))
    env: list[dict[str, Any]] = [{"name": URI_VAR, "value": uri}] if uri else []
    if secret:
        env += [
            {
                "name": var,
                "valueFrom": {
                    "secretKeyRef": {"name": secret, "key": var, **({"optional": True} if var != URI_VAR else {})}
                },
            }
            for var in VARS
            if not (uri and var == URI_VAR)
        ]
    if not env:
        return []
    return env + ([{"name": EXPERIMENT_VAR, "value": experiment}] if experiment else []) + workflow_run_env(params)


def workflow_run_env(params: TrackingParams) -> list[dict[str, Any]]:
    """What a tracked pod finds its workflow's MLflow run by (`trainflow.tracking.cluster_run`): the workflow's uid, its
    name and the pipeline's."""
    return [
        {"name": WORKFLOW_UID_ENV, "value": "{{workflow.uid}}"},
        {"name": WORKFLOW_NAME_ENV, "value": "{{workflow.name}}"},
        {"name": PIPELINE_ENV, "value": params.pipeline},
    ]
