"""`trainflow doctor`: one line per check of what workflows need here or on a cluster, with the fix."""

from __future__ import annotations

import sys

import click

from trainflow.cli.options import backend_option, job_kind_option, namespace_option
from trainflow.cli.output import console
from trainflow.workflows.doctor import FAIL, OK, Check

MARKS = {OK: "[green]ok  [/]", "warn": "[yellow]warn[/]", FAIL: "[red]fail[/]"}


@click.command("doctor")
@backend_option
@namespace_option
@click.option("--secret", default="aws-creds", show_default=True, help="The S3 credentials Secret (aws-secret).")
@job_kind_option
@click.option(
    "--training-runtime", default="", help="--job-kind trainjob: the ClusterTrainingRuntime [torch-distributed]."
)
def doctor_command(backend: str, namespace: str, secret: str, job_kind: str, training_runtime: str) -> None:
    """Check that workflows can run; exit 1 if any check fails."""
    from trainflow.cli.workflows import backend_for
    from trainflow.workflows.kubernetes.options import cluster_options

    options = cluster_options(training_runtime=training_runtime)
    checks = backend_for(backend, namespace, job_kind, options).checks(secret)
    for check in checks:
        print_check(check)
    if any(check.status == FAIL for check in checks):
        sys.exit(1)


def print_check(check: Check) -> None:
    fix = f" [dim]-> {check.fix}[/]" if check.fix and check.status != OK else ""
    console.print(f"{MARKS[check.status]} {check.name}: {check.detail}{fix}", highlight=False, soft_wrap=True)
