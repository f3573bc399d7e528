"""`trainflow compile`: print the manifests of a pipeline (the dry run of the backend that compiles)."""

from __future__ import annotations

from typing import Any

import click

from trainflow.cli.cluster_flags import cluster_flags, options_from
from trainflow.cli.options import parameters_option
from trainflow.workflows import PIPELINES, WorkflowError, parse_assignments

TARGETS = (*sorted(PIPELINES), "rbac")


@click.command("compile")
@click.argument("target", metavar=f"{'|'.join(TARGETS)}|FILE")
@parameters_option()
@click.option(
    "--job-kind",
    type=click.Choice(["pytorchjob", "tfjob"]),
    default="pytorchjob",
    show_default=True,
    help="Kubeflow training job each training step creates.",
)
@click.option("--no-cache", is_flag=True, help="No Argo memoization: every step always runs.")
@click.option("-n", "--namespace", default=None, help="Namespace (rbac; for pipelines the same as -p namespace=...).")
@click.option("-o", "--output", default="-", show_default=True, help="File to write, or - for stdout.")
@cluster_flags
def compile_command(
    target: str,
    params: tuple[str, ...],
    job_kind: str,
    no_cache: bool,
    namespace: str | None,
    output: str,
    **flags: Any,
) -> None:
    """Print a pipeline (a built-in, or a .py/.yaml file) as its Argo Workflow, or rbac, in YAML."""
    from pathlib import Path

    from trainflow.settings import trainflow_home
    from trainflow.storage import atomic_write_bytes
    from trainflow.workflows.backends import COMPILER, Where, open_backend
    from trainflow.workflows.kubernetes import compile_rbac, to_yaml

    values = parse_assignments(params)
    options = options_from(flags)
    if target == "rbac":
        objects = compile_rbac(values.pop("namespace", namespace or "default"), options.service_account)
        if values:
            raise WorkflowError(f"rbac takes only -n/--namespace, not -p {', '.join(sorted(values))}")
    else:
        from trainflow.pipelines.loading import load_pipeline

        where = Where(trainflow_home(), values.get("namespace") or namespace or "default", job_kind, options)
        objects = open_backend(COMPILER, where).dryrun(load_pipeline(target), values, no_cache=no_cache)
    text = to_yaml(objects)
    if output == "-":
        click.echo(text, nl=False)
    else:
        atomic_write_bytes(Path(output), text.encode())
