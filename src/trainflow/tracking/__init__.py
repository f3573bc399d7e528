"""tracking: a run's parameters, curves, dataset and models in MLflow when MLFLOW_TRACKING_URI is set; nothing otherwise.

Beside the layers: it imports no layer (callers hand it plain values), and `mlflow` loads only where
tracking is on, so a command run without the variable imports none of it (a test holds this).
The runner opens one MLflow run per workflow (`workflow_run.py`) and hands its id to the steps in
`PARENT_ENV`; a step opens a nested run (`step_run.py`) whose id it puts in MLflow's own `MLFLOW_RUN_ID`,
so its workers' curves (`sink.py`) and a user's plain `mlflow.log_metric` land in it. The runner ends the workflow's
run with the workflow and keeps its id and server (never credentials) in the workflow's folder (RUN_RECORD): `trainflow
retry` reopens it there, and a runner found dead (SIGKILL) has it ended KILLED by the next `get`/`list`/`retry`.
On Kubernetes no process sees the workflow start: each pod finds or creates the workflow's run by the Argo workflow's
uid, and the workflow's exit handler ends it FINISHED or FAILED (`cluster_run.py`).
"""

from __future__ import annotations

import os

URI_ENV = "MLFLOW_TRACKING_URI"
RUN_ENV = "MLFLOW_RUN_ID"  # MLflow's fluent API resumes this run: the user's `mlflow.log_metric` lands in it
PARENT_ENV = "TRAINFLOW_MLFLOW_PARENT_RUN_ID"  # the workflow's run, which each step's run nests under
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"  # MLflow's own variable: the experiment (default: the pipeline's name)
RUN_RECORD = "mlflow-run.json"  # in a local workflow's folder: its MLflow run and server (no credentials), for retry


def tracking_uri() -> str:
    """The tracking server's URI, '' when tracking is off."""
    return os.environ.get(URI_ENV, "").strip()


def step_run_id() -> str:
    """The run this process logs into, '' when tracking is off or no step opened one."""
    return os.environ.get(RUN_ENV, "").strip() if tracking_uri() else ""


def flush_before_exit() -> None:
    """Before a process ends with os._exit (past atexit), on success and failure alike: the curve points it recorded
    go to the server, or the run is tagged incomplete, within a few seconds at most (`sink.EXIT_SECONDS`)."""
    if step_run_id():
        from trainflow.tracking.sink import close_sinks

        close_sinks()
