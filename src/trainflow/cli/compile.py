"""`trainflow compile`: print the Kubernetes manifests of a pipeline (the Kubernetes backend's dry run)."""

from __future__ import annotations

import click

from trainflow.workflows import PIPELINES, WorkflowError, parse_assignments

TARGETS = (*sorted(PIPELINES), "rbac")


@click.command("compile")
@click.argument("target", type=click.Choice(TARGETS))
@click.option("-p", "--parameter", "params", multiple=True, help="NAME=VALUE; repeatable.")
@click.option("--job-kind", type=click.Choice(["pytorchjob", "tfjob"]), default="pytorchjob", show_default=True,
              help="Kubeflow training job the train-model step creates.")
@click.option("-n", "--namespace", default=None, help="Namespace (rbac; for pipelines the same as -p namespace=...).")
@click.option("-o", "--output", default="-", show_default=True, help="File to write, or - for stdout.")
def compile_command(target: str, params: tuple[str, ...], job_kind: str, namespace: str | None, output: str) -> None:
    """Print a pipeline as its Argo Workflow (or rbac: the ServiceAccount, Role, RoleBinding) in YAML."""
    from pathlib import Path

    from trainflow.storage import atomic_write_bytes
    from trainflow.workflows.kubernetes import compile_pipeline, compile_rbac, to_yaml

    values = parse_assignments(params)
    if namespace:
        values.setdefault("namespace", namespace)
    if target == "rbac":
        objects = compile_rbac(values.pop("namespace", "default"))
        if values:
            raise WorkflowError(f"rbac takes only -n/--namespace, not -p {', '.join(sorted(values))}")
    else:
        objects = compile_pipeline(PIPELINES[target], values, job_kind)
    text = to_yaml(objects)
    if output == "-":
        click.echo(text, nl=False)
    else:
        atomic_write_bytes(Path(output), text.encode())
