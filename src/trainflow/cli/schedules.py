"""`trainflow schedule create|list|get|delete|suspend|resume`, the local `trainflow scheduler` process, and the argo
verbs `wait`, `watch` and `lint`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.table import Table

from trainflow.cli.options import backend_option, namespace_option, parameters_option, tracking_uri_option
from trainflow.cli.output import console, emit
from trainflow.cli.watch import follow
from trainflow.cli.workflows import backend_for
from trainflow.settings import trainflow_home
from trainflow.workflows import PIPELINES, parse_assignments
from trainflow.workflows.backend import FINISHED, SUCCEEDED, Backend
from trainflow.workflows.schedules import DEFAULT_DEADLINE, POLICIES, ScheduleInfo, ScheduleRequest, when_of


@click.group("schedule")
def schedule() -> None:
    """Run a pipeline on a schedule (cron or an interval): locally by a scheduler process, on Kubernetes as an Argo
    CronWorkflow."""


@schedule.command("create")
@click.argument("name")
@click.argument("pipeline", metavar=f"{'|'.join(sorted(PIPELINES))}|FILE")
@click.option("--cron", default=None, metavar="'MIN HOUR DAY MONTH WEEKDAY'", help="When to run, e.g. '0 3 * * *'.")
@click.option("--every", default=None, metavar="INTERVAL", help="Run every INTERVAL instead: 30s, 5m, 2h, 1d.")
@click.option("--timezone", default="UTC", show_default=True, help="The time zone --cron is read in (IANA name).")
@click.option(
    "--concurrency-policy",
    type=click.Choice(POLICIES),
    default="Allow",
    show_default=True,
    help="A run falling due while the previous one runs: start it too, skip it, or stop the previous one first.",
)
@click.option(
    "--starting-deadline",
    type=int,
    default=DEFAULT_DEADLINE,
    show_default=True,
    help="Seconds a run missed while the scheduler was down may still start (the latest one only).",
)
@click.option("--no-cache", is_flag=True, help="Each run runs every step, even those an earlier run could stand for.")
@parameters_option()
@tracking_uri_option
@backend_option
@namespace_option
def create(
    name: str,
    pipeline: str,
    cron: str | None,
    every: str | None,
    timezone: str,
    concurrency_policy: str,
    starting_deadline: int,
    no_cache: bool,
    params: tuple[str, ...],
    tracking_uri: str | None,
    backend: str,
    namespace: str,
) -> None:
    """Create schedule NAME running PIPELINE (a built-in, or a .py/.yaml file); its runs are named NAME-<unix time>."""
    from trainflow.pipelines.loading import load_pipeline
    from trainflow.workflows.tracking_settings import with_tracking_uri

    target = backend_for(backend, namespace)
    request = ScheduleRequest(name, when_of(cron, every, timezone, starting_deadline), concurrency_policy, no_cache)
    spec = load_pipeline(pipeline)
    values = with_tracking_uri(spec, parse_assignments(params), tracking_uri)
    path = [] if pipeline in PIPELINES else [str(Path(pipeline).resolve().parent)]
    info = target.create_schedule(request, spec, values, python_path=path)
    console.print(
        f"Schedule {info.name}: {info.pipeline} {info.schedule} ({info.timezone}), next run {_at(info.next_run_at)}"
    )


@schedule.command("list")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None)
@backend_option
@namespace_option
def list_schedules(output: str | None, backend: str, namespace: str) -> None:
    """List schedules: NAME PIPELINE SCHEDULE POLICY SUSPENDED LAST-RUN NEXT-RUN."""
    found = backend_for(backend, namespace).schedules()
    if output:
        emit([s.to_dict() for s in found], output)
        return
    table = Table("NAME", "PIPELINE", "SCHEDULE", "POLICY", "SUSPENDED", "LAST RUN", "NEXT RUN", box=None)
    for s in found:
        table.add_row(
            s.name,
            s.pipeline,
            s.schedule,
            s.concurrency_policy,
            "yes" if s.suspended else "no",
            s.last_run or "-",
            _at(s.next_run_at),
        )
    console.print(table if found else "no schedules")


@schedule.command("get")
@click.argument("name")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None)
@backend_option
@namespace_option
def get_schedule(name: str, output: str | None, backend: str, namespace: str) -> None:
    """Show a schedule: its timing, values, last and next runs, and what each recent due time did."""
    info = backend_for(backend, namespace).schedule(name)
    if output:
        emit(info.to_dict(), output)
        return
    _print(info)


@schedule.command("delete")
@click.argument("name")
@backend_option
@namespace_option
def delete_schedule(name: str, backend: str, namespace: str) -> None:
    """Delete a schedule (the runs it started stay: `trainflow delete RUN` removes one)."""
    backend_for(backend, namespace).delete_schedule(name)
    console.print(f'Schedule "{name}" deleted')


@schedule.command("suspend")
@click.argument("name")
@backend_option
@namespace_option
def suspend(name: str, backend: str, namespace: str) -> None:
    """Stop firing a schedule until `schedule resume`."""
    backend_for(backend, namespace).suspend_schedule(name, True)
    console.print(f"Schedule {name} suspended")


@schedule.command("resume")
@click.argument("name")
@backend_option
@namespace_option
def resume(name: str, backend: str, namespace: str) -> None:
    """Fire a suspended schedule again, from its next due time (runs due while it was suspended do not run)."""
    info = backend_for(backend, namespace).suspend_schedule(name, False)
    console.print(f"Schedule {name} resumed, next run {_at(info.next_run_at)}")


@click.command("scheduler", hidden=True)
def scheduler_command() -> None:
    """Internal: fire this machine's schedules (started on demand by `schedule create`; exits when none is active)."""
    from trainflow.workflows.local.scheduler import serve

    sys.exit(serve(trainflow_home()))


@click.command("wait")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@backend_option
@namespace_option
def wait(names: tuple[str, ...], backend: str, namespace: str) -> None:
    """Block until each workflow ends; exit 0 when all Succeeded, else 1 (the failed ones are named)."""
    target = backend_for(backend, namespace)
    for name in names:
        target.get(name)  # an unknown name is an error now, before any waiting
    ended = {name: _ended(target, name) for name in names}
    failed = [name for name, status in ended.items() if status != SUCCEEDED]
    if failed:
        click.echo(f"not Succeeded: {', '.join(f'{n} ({ended[n]})' for n in failed)}", err=True)
        sys.exit(1)


@click.command("watch")
@click.argument("name")
@backend_option
@namespace_option
def watch(name: str, backend: str, namespace: str) -> None:
    """Show a workflow's steps live until it ends (as `submit --watch`); exit 1 if it did not succeed."""
    target = backend_for(backend, namespace)
    sys.exit(0 if follow(target, name, live=True).status == SUCCEEDED else 1)


@click.command("lint")
@click.argument("sources", nargs=-1, required=True, metavar="FILE...")
@parameters_option("NAME=VALUE to check as well; repeatable.")
@backend_option
@namespace_option
def lint(sources: tuple[str, ...], params: tuple[str, ...], backend: str, namespace: str) -> None:
    """Check pipelines without running them: `pipeline validate`, then the backend's dry run (Kubernetes: compiled)."""
    from trainflow.pipelines.loading import load_pipeline
    from trainflow.workflows import resolve_params

    target = backend_for(backend, namespace)
    values = parse_assignments(params)
    for source in sources:
        spec = load_pipeline(source)
        resolve_params(spec, values)
        target.dryrun(spec, values, python_path=[] if source in PIPELINES else [str(Path(source).resolve().parent)])
        console.print(
            f"{source}: pipeline {spec.name} is valid ({len(spec.steps)} steps, {len(spec.params)} parameters)"
        )


def _ended(target: Backend, name: str) -> str:
    info = target.get(name)
    while info.status not in FINISHED:
        time.sleep(target.poll_seconds)
        info = target.get(name)
    console.print(f"{name} {info.status}" + (f": {info.message}" if info.message else ""), soft_wrap=True, markup=False)
    return info.status


def _at(when: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if when else "-"


def _print(info: ScheduleInfo) -> None:
    console.print(
        f"Name:         {info.name}\nPipeline:     {info.pipeline}\nSchedule:     {info.schedule} ({info.timezone})"
        f"\nPolicy:       {info.concurrency_policy}\nSuspended:    {'yes' if info.suspended else 'no'}"
        f"\nLast run:     {info.last_run or '-'}\nNext run:     {_at(info.next_run_at)}"
        f"\nParameters:   {' '.join(f'{k}={v}' for k, v in info.params.items()) or '-'}",
        soft_wrap=True,
        markup=False,
    )
    if info.history:
        table = Table("DUE", "WORKFLOW", "OUTCOME", "MESSAGE", box=None)
        for fire in info.history:
            table.add_row(_at(fire.due), fire.workflow, fire.outcome, fire.message)
        console.print(table)
