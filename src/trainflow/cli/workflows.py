"""Argo-style commands over a workflow backend: submit, logs, stop, retry, resubmit, delete (list and get: listing.py)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from trainflow.cli.cluster_flags import cluster_flags, options_from
from trainflow.cli.code_flags import code_package_option, fetched
from trainflow.cli.options import (
    backend_for,
    backend_option,
    job_kind_option,
    namespace_option,
    parameters_option,
    tracking_uri_option,
)
from trainflow.cli.output import console, emit
from trainflow.cli.watch import follow
from trainflow.settings import trainflow_home
from trainflow.workflows import PIPELINES, WorkflowError, parse_assignments
from trainflow.workflows.backend import Backend
from trainflow.workflows.backends import DEFAULT, Where, open_backend

if TYPE_CHECKING:
    from trainflow.workflows.kubernetes.options import ClusterOptions


def local() -> Backend:
    """The backend on this machine."""
    return open_backend(DEFAULT, Where(trainflow_home()))


@click.command()
@click.argument("pipeline", metavar=f"{'|'.join(sorted(PIPELINES))}|FILE")
@parameters_option()
@click.option("--wait", is_flag=True, help="Wait until the workflow ends; exit non-zero if it failed.")
@click.option("--watch", is_flag=True, help="Show the steps live until the workflow ends.")
@click.option("--no-cache", is_flag=True, help="Run every step, even those an earlier run's outputs could stand for.")
@job_kind_option
@code_package_option
@tracking_uri_option
@backend_option
@namespace_option
@cluster_flags
def submit(
    pipeline: str,
    params: tuple[str, ...],
    wait: bool,
    watch: bool,
    no_cache: bool,
    job_kind: str,
    code_package: str | None,
    tracking_uri: str | None,
    backend: str,
    namespace: str,
    **flags: Any,
) -> None:
    """Submit PIPELINE (model-train, model-deploy, or a .py/.yaml file defining one) with -p NAME=VALUE."""
    from trainflow.pipelines.loading import load_pipeline
    from trainflow.workflows.tracking_settings import with_tracking_uri

    spec = load_pipeline(pipeline, fetched(code_package))
    values = with_tracking_uri(spec, parse_assignments(params), tracking_uri)
    options, python_path = code_of(pipeline, spec, values, code_package, backend, options_from(flags))
    target = backend_for(backend, namespace, job_kind, options)
    info = target.submit(spec, values, no_cache=no_cache, python_path=python_path)
    console.print(
        f"Name: {info.name}\nStatus: {info.status}\nCreated: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info.created_at))}"
    )
    if wait or watch:
        final = follow(target, info.name, live=watch or sys.stdout.isatty())
        sys.exit(0 if final.status == "Succeeded" else 1)


def code_of(
    pipeline: str, spec: Any, values: dict[str, str], given: str | None, backend: str, options: ClusterOptions
) -> tuple[ClusterOptions, list[str] | None]:
    """Where the run's steps import the pipeline file's own code from, and the options telling pods its package.

    Without a package, from the file's folder; with one (`--code-package`, or on a backend whose steps run
    elsewhere, packed under a shared artifacts_url), from its verified, unpacked copy, here and in every pod.
    """
    from dataclasses import replace

    from trainflow.cli.code_flags import pipeline_folder, shipped
    from trainflow.workflows.backends import SHIPS_CODE
    from trainflow.workflows.kubernetes.options import package_url

    folder = pipeline_folder(pipeline)
    package = shipped(pipeline, spec, values, given) if given or backend in SHIPS_CODE else None
    if package is None:
        return options, None if folder is None else [str(folder)]
    if backend in SHIPS_CODE:
        options = replace(options, code_package=package_url(package.url))
    return options, fetched(package.url)


@click.command()
@click.argument("name")
@click.option("--step", default=None, help="Only this step's log.")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing until the workflow ends.")
@backend_option
@namespace_option
def logs(name: str, step: str | None, follow_: bool, backend: str, namespace: str) -> None:
    """Print a workflow's step logs, step by step; a failed workflow's error comes last."""
    target = backend_for(backend, namespace)
    for line in target.logs(name, step, follow_):
        click.echo(line)
    info = target.get(name)
    failed = [s.name for s in info.steps if s.status == "Failed"]
    if info.status == "Failed" and (step is None or step in failed):
        click.echo(f"workflow {name} Failed: {info.message}")


@click.command()
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Delete every workflow.")
@backend_option
@namespace_option
def delete(name: str | None, all_: bool, backend: str, namespace: str) -> None:
    """Delete a workflow: stop its steps and services, free their ports, forget it."""
    target = backend_for(backend, namespace)
    if all_ == bool(name):
        raise WorkflowError("give a workflow NAME or --all")
    names = [i.name for i in target.list_brief()] if all_ or name is None else [name]
    for n in names:
        target.delete(n)
        console.print(f'Workflow "{n}" deleted')


@click.command()
@click.argument("name")
@backend_option
@namespace_option
def stop(name: str, backend: str, namespace: str) -> None:
    """Stop a running workflow (services already started stay up)."""
    console.print(f"{name}: {backend_for(backend, namespace).stop(name).status}")


@click.command()
@click.argument("name")
@parameters_option("Change a parameter; the steps that read it (and those after them) run again. Repeatable.")
@click.option("--wait", is_flag=True, help="Wait until the workflow ends; exit 1 if it failed again.")
@backend_option
@namespace_option
def retry(name: str, params: tuple[str, ...], wait: bool, backend: str, namespace: str) -> None:
    """Re-run a failed workflow from its failed step, keeping the steps that succeeded (as `argo retry`)."""
    target = backend_for(backend, namespace)
    info = target.retry(name, parse_assignments(params))
    console.print(f"{info.name}: retrying")
    if wait:
        sys.exit(0 if follow(target, name, live=sys.stdout.isatty()).status == "Succeeded" else 1)


@click.command()
@click.argument("name")
@parameters_option("Run with this parameter changed (the others as in NAME). Repeatable.")
@click.option("--job-name", default=None, help="Name of the new run (default: NAME plus a random suffix).")
@click.option("--no-cache", is_flag=True, help="Run every step again (default: reuse this run's cacheable results).")
@click.option("--wait", is_flag=True, help="Wait until the new workflow ends; exit 1 if it failed.")
@backend_option
@namespace_option
def resubmit(
    name: str, params: tuple[str, ...], job_name: str | None, no_cache: bool, wait: bool, backend: str, namespace: str
) -> None:
    """Run a workflow again under a new name (as `argo resubmit`); unchanged cacheable steps reuse its outputs."""
    target = backend_for(backend, namespace)
    info = target.resubmit(name, job_name, no_cache, parse_assignments(params))
    console.print(f"Name: {info.name}\nStatus: {info.status}")
    if wait:
        sys.exit(0 if follow(target, info.name, live=sys.stdout.isatty()).status == "Succeeded" else 1)


@click.command()
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None)
@backend_option
@namespace_option
def services(output: str | None, backend: str, namespace: str) -> None:
    """List running services (TensorBoard, model servers) with their URLs."""
    target = backend_for(backend, namespace)
    rows = [
        {"workflow": w.name, "service": s.name, **{k: v for k, v in s.outputs.items() if k != "pid"}}
        for w, s in target.services()
    ]
    own = target.own_services()  # the backend's helpers here (the local scheduler, restarted if it died)
    if output:
        emit(rows + [{"workflow": "", **row} for row in own], output)
        return
    from rich.table import Table

    table = Table("WORKFLOW", "SERVICE", "URL", box=None)
    for row in own:
        table.add_row("-", str(row["service"]), " ".join(f"{k}={v}" for k, v in row.items() if k != "service"))
    for row in rows:
        urls = [
            str(v)
            for k, v in row.items()
            if k not in ("workflow", "service")
            and isinstance(v, str)
            and (v.startswith("http") or k.endswith(("url", "address")))
        ]
        table.add_row(row["workflow"], row["service"], " ".join(urls))
    console.print(table if rows or own else "no running services")
    for row in rows:
        if "port-forward" in row:  # cluster addresses: this is how they reach this machine
            console.print(f"{row['workflow']}/{row['service']} from here: {row['port-forward']}", soft_wrap=True)
    if any("port-forward" in row for row in rows):
        console.print(
            f"without kubectl: trainflow tensorboard NAME {target.flags}, or trainflow predict "
            f"--workflow NAME {target.flags} (each opens its own port-forward)",
            soft_wrap=True,
            markup=False,
        )


@click.command("tensorboard")
@click.argument("name")
@click.option(
    "--local-port",
    default=0,
    type=click.IntRange(0, 65535),
    help="Kubernetes: the loopback port to forward TensorBoard to [0: a free one].",
)
@backend_option
@namespace_option
def tensorboard(name: str, local_port: int, backend: str, namespace: str) -> None:
    """Print the URL of a workflow's TensorBoard; on a cluster, forward it here until Ctrl+C."""
    from trainflow.cli.forward import show_tensorboard

    show_tensorboard(backend_for(backend, namespace), name, local_port)
