"""The workflow's MLflow run on Kubernetes: found or created by the Argo workflow's uid, ended by its exit handler.

No process sees a compiled workflow start, so nothing opens its run up front as the local runner does. Every pod
gets the workflow's uid (`{{workflow.uid}}`, in WORKFLOW_UID_ENV): the first step to open its own run finds the
workflow's run by the tag `trainflow.workflow_uid`, or creates it. Pods that start together may each create one:
each then searches again and every pod keeps the oldest one it sees (by start time, then id), and a pod whose run
lost deletes it. A run's start time is the creating client's clock, set before the server stores it, so a pod
that searches while another's run is still being stored can settle on a run that loses later: a step therefore
nests itself again under the oldest run when it ends (`renest`), and the exit handler (`trainflow step
mlflow-end-run`) settles the workflow for good (`settle`: every step under the oldest run, the others deleted)
before it logs the workflow's parameters and ends the run FINISHED or FAILED by `{{workflow.status}}`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

from trainflow.tracking import EXPERIMENT_ENV, tracking_uri
from trainflow.tracking.client import (
    MAX_PARAM_CHARS,
    client,
    experiment_id,
    reason_of,
    redacted,
    trainflow_version,
)

log = logging.getLogger(__name__)

WORKFLOW_UID_ENV = "TRAINFLOW_WORKFLOW_UID"  # {{workflow.uid}}: the key the workflow's run is found by
WORKFLOW_NAME_ENV = "TRAINFLOW_WORKFLOW_NAME"  # {{workflow.name}}: the run's name and its trainflow.workflow tag
PIPELINE_ENV = "TRAINFLOW_PIPELINE"  # the pipeline's name: the experiment's, unless MLFLOW_EXPERIMENT_NAME is set
PARAMS_ENV = "TRAINFLOW_WORKFLOW_PARAMETERS"  # {{workflow.parameters.json}}, the exit handler's only
UID_TAG = "trainflow.workflow_uid"
_PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: a step's run nests under its workflow's
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # a Kubernetes uid
_ENDED = {"Succeeded": "FINISHED"}  # Argo's Failed and Error: FAILED


def workflow_uid() -> str:
    """The Argo workflow's uid this pod belongs to; '' outside a compiled workflow (or for a value that is not one)."""
    uid = os.environ.get(WORKFLOW_UID_ENV, "").strip()
    return uid if _UID.fullmatch(uid) else ""


def parent_run(mlflow_client: Any, uid: str) -> str:
    """The workflow `uid`'s run: found by its tag, else created; when several pods create one at once, the oldest."""
    pipeline = _pipeline()
    experiment = _experiment(mlflow_client)
    found = _runs_of(mlflow_client, experiment, uid)
    if found:
        return found[0]
    name = os.environ.get(WORKFLOW_NAME_ENV, "").strip() or pipeline
    tags = {
        UID_TAG: uid,
        "trainflow.workflow": name,
        "trainflow.pipeline": pipeline,
        "trainflow.backend": "kubernetes",
        "trainflow.version": trainflow_version(),
        "trainflow.tracking": "on",
    }
    mine = str(mlflow_client.create_run(experiment, run_name=name, tags=tags).info.run_id)
    oldest = (_runs_of(mlflow_client, experiment, uid) or [mine])[0]
    if oldest != mine:
        mlflow_client.delete_run(mine)  # another pod's came first: every pod nests under that one
    return oldest


def renest(mlflow_client: Any, uid: str, run_id: str, parent: str) -> None:
    """Nest a step's run under the workflow's oldest run if that is no longer `parent` (a run that lost a race)."""
    found = _runs_of(mlflow_client, _experiment(mlflow_client), uid)
    if found and found[0] != parent:
        mlflow_client.set_tag(run_id, _PARENT_TAG, found[0])


def settle(mlflow_client: Any, experiment: str, uid: str) -> str:
    """The workflow's one run, once its pods are done: the oldest; the steps of every other run of `uid` (deleted
    ones too) moved under it and the others deleted."""
    from mlflow.entities import ViewType

    runs = mlflow_client.search_runs(
        [experiment], f"tags.`{UID_TAG}` = '{uid}'", run_view_type=ViewType.ALL, max_results=100
    )
    active = _oldest_first([r for r in runs if r.info.lifecycle_stage == "active"])
    keep = active[0] if active else parent_run(mlflow_client, uid)
    for other in (str(r.info.run_id) for r in runs if str(r.info.run_id) != keep):
        for step in mlflow_client.search_runs(
            [experiment], f"tags.`{_PARENT_TAG}` = '{other}'", run_view_type=ViewType.ALL, max_results=1000
        ):
            mlflow_client.set_tag(step.info.run_id, _PARENT_TAG, keep)
        if other in active:
            mlflow_client.delete_run(other)
    return keep


def _pipeline() -> str:
    return os.environ.get(PIPELINE_ENV, "").strip() or "trainflow"


def _experiment(mlflow_client: Any) -> str:
    """The workflow's experiment: MLFLOW_EXPERIMENT_NAME's, else the pipeline's."""
    return experiment_id(mlflow_client, os.environ.get(EXPERIMENT_ENV) or _pipeline())


def _runs_of(mlflow_client: Any, experiment: str, uid: str) -> list[str]:
    """The runs tagged with `uid`, oldest first (ties by id, so every pod orders them alike)."""
    return _oldest_first(mlflow_client.search_runs([experiment], f"tags.`{UID_TAG}` = '{uid}'", max_results=100))


def _oldest_first(runs: list[Any]) -> list[str]:
    return [str(r.info.run_id) for r in sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))]


def end_workflow_run(argo_status: str) -> str | None:
    """In the exit handler: log the workflow's parameters and end its run FINISHED (Succeeded) or FAILED; best effort
    (a warning in the handler's log, never a failed handler). Returns the status set, None when nothing was."""
    uri, uid = tracking_uri(), workflow_uid()
    if not uri or not uid:
        log.warning("no MLflow run to end: %s is not set in this pod", "MLFLOW_TRACKING_URI" if not uri else "the uid")
        return None
    status = _ENDED.get(argo_status, "FAILED")
    try:
        c = client(uri)
        run_id = settle(c, _experiment(c), uid)
        _log_params(c, run_id)
        c.set_terminated(run_id, status)
    except Exception as exc:  # noqa: BLE001 - tracking never changes the workflow's outcome
        log.warning("MLflow at %s: could not end the workflow's run as %s: %s", redacted(uri), status, reason_of(exc))
        return None
    return status


def _log_params(mlflow_client: Any, run_id: str) -> None:
    """The workflow's parameters (Argo's JSON list of {name, value}) as the run's, once: a second end logs none."""
    from mlflow.entities import Param

    try:
        given = json.loads(os.environ.get(PARAMS_ENV) or "[]")
        values = {str(p["name"]): str(p.get("value", "")) for p in given}
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("the workflow's parameters in %s are not Argo's JSON list: not logged", PARAMS_ENV)
        return
    logged = mlflow_client.get_run(run_id).data.params
    params = [Param(k, redacted(v)[:MAX_PARAM_CHARS]) for k, v in sorted(values.items()) if k not in logged]
    for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters a batch
        mlflow_client.log_batch(run_id, params=params[start : start + 100])
