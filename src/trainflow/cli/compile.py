"""`trainflow compile`: print the manifests of a pipeline (the dry run of the backend that compiles)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from trainflow.cli.cluster_flags import cluster_flags, options_from
from trainflow.cli.code_flags import code_package_option, fetched, pipeline_folder
from trainflow.cli.options import job_kind_option, parameters_option, tracking_uri_option
from trainflow.workflows import PIPELINES, WorkflowError, parse_assignments
from trainflow.workflows.schedules import POLICIES

if TYPE_CHECKING:
    from trainflow.pipelines import Pipeline
    from trainflow.workflows.kubernetes.options import ClusterOptions

TARGETS = (*sorted(PIPELINES), "rbac")


@click.command("compile")
@click.argument("target", metavar=f"{'|'.join(TARGETS)}|FILE")
@parameters_option()
@job_kind_option
@code_package_option
@click.option("--no-upload", is_flag=True, help="With --code-package: do not upload; print the command that does.")
@click.option("--no-cache", is_flag=True, help="No Argo memoization: every step always runs.")
@click.option("-n", "--namespace", default=None, help="Namespace (rbac; for pipelines the same as -p namespace=...).")
@click.option("-o", "--output", default="-", show_default=True, help="File to write, or - for stdout.")
@click.option("--schedule", default=None, metavar="'MIN HOUR DAY MONTH WEEKDAY'", help="Print an Argo CronWorkflow.")
@click.option("--every", default=None, metavar="INTERVAL", help="A CronWorkflow running every INTERVAL (30s, 5m, 2h).")
@click.option("--schedule-name", default=None, help="The CronWorkflow's name (default: the run's name or pipeline's).")
@click.option("--timezone", default="UTC", show_default=True, help="The time zone --schedule is read in.")
@click.option("--concurrency-policy", type=click.Choice(POLICIES), default="Allow", show_default=True)
@tracking_uri_option
@cluster_flags
def compile_command(
    target: str,
    params: tuple[str, ...],
    job_kind: str,
    code_package: str | None,
    no_upload: bool,
    no_cache: bool,
    namespace: str | None,
    output: str,
    schedule: str | None,
    every: str | None,
    schedule_name: str | None,
    timezone: str,
    concurrency_policy: str,
    tracking_uri: str | None,
    **flags: Any,
) -> None:
    """Print a pipeline (a built-in, or a .py/.yaml file) as its Argo Workflow (--schedule: CronWorkflow), or rbac."""
    from pathlib import Path

    from trainflow.settings import trainflow_home
    from trainflow.storage import atomic_write_bytes
    from trainflow.workflows.backends import COMPILER, Where, open_backend
    from trainflow.workflows.kubernetes import compile_rbac, to_yaml
    from trainflow.workflows.params import resolve_params, run_name
    from trainflow.workflows.schedules import ScheduleRequest, when_of
    from trainflow.workflows.tracking_settings import with_tracking_uri

    values = parse_assignments(params)
    options = options_from(flags)
    if target == "rbac":
        if tracking_uri:
            raise WorkflowError("rbac takes no --tracking-uri: give it when compiling a pipeline")
        objects = compile_rbac(values.pop("namespace", namespace or "default"), options.service_account)
        if values:
            raise WorkflowError(f"rbac takes only -n/--namespace, not -p {', '.join(sorted(values))}")
    else:
        from trainflow.pipelines.loading import load_pipeline

        python_path = fetched(code_package) or ([str(f)] if (f := pipeline_folder(target)) else None)
        spec = load_pipeline(target, python_path)
        values = with_tracking_uri(spec, values, tracking_uri)
        if code_package:
            options = _with_package(target, spec, values, code_package, no_upload, options)
        where = Where(trainflow_home(), values.get("namespace") or namespace or "default", job_kind, options)
        compiler = open_backend(COMPILER, where)
        if schedule is None and every is None:
            objects = compiler.dryrun(spec, values, no_cache=no_cache, python_path=python_path)
        else:
            when = when_of(schedule, every, timezone)
            name = schedule_name or run_name(spec, resolve_params(spec, values)) or spec.name
            request = ScheduleRequest(name, when, concurrency_policy, no_cache)
            objects = compiler.dryrun_schedule(request, spec, values, python_path)
    text = to_yaml(objects)
    if output == "-":
        click.echo(text, nl=False)
    else:
        atomic_write_bytes(Path(output), text.encode())


def _with_package(
    target: str, spec: Pipeline, values: dict[str, str], where: str, no_upload: bool, options: ClusterOptions
) -> ClusterOptions:
    """`options` telling every pod the code package (packed from `target`'s folder to `where`, uploaded or not)."""
    from dataclasses import replace

    from trainflow.cli.code_flags import shipped
    from trainflow.workflows.kubernetes.options import package_url

    result = shipped(target, spec, values, where, send=not no_upload)
    if result is None:  # shipped returns None only without a URL; `where` is one
        raise WorkflowError(f"--code-package {where}: nothing to ship")
    if no_upload and result.packed is not None:
        click.echo(f"# upload the code package first: trainflow code-package {target} --to {where}", err=True)
    return replace(options, code_package=package_url(result.url))
