"""`trainflow step mlflow-end-run`: a compiled workflow's exit handler ends the workflow's MLflow run."""

from __future__ import annotations

import logging

import click

log = logging.getLogger(__name__)


@click.command("mlflow-end-run")
@click.option("--status", required=True, help="The workflow's status as Argo gives it ({{workflow.status}}).")
def mlflow_end_run_step(status: str) -> None:
    """Exit handler: log the workflow's parameters to its MLflow run and end it FINISHED or FAILED (never fails)."""
    from trainflow.tracking.cluster_run import end_workflow_run

    ended = end_workflow_run(status)
    if ended:
        log.info("the workflow's MLflow run ended %s", ended)
