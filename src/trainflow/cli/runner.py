"""`trainflow workflow-runner NAME`: the detached process submit and retry start (kept light: it starts per run)."""

from __future__ import annotations

import sys

import click

from trainflow.proctitle import set_title
from trainflow.settings import trainflow_home


@click.command("workflow-runner", hidden=True)
@click.argument("name")
def workflow_runner(name: str) -> None:
    """Internal: run a recorded workflow's steps (started detached by submit and retry)."""
    from trainflow.workflows.local.executor import run_workflow

    set_title(f"trainflow runner {name}")
    sys.exit(run_workflow(trainflow_home(), name))
