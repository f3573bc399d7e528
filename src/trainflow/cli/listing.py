"""The commands that read runs back, `list` and `get`: run often over a long history, they import none of what
submitting a run needs (the built-in pipelines, the cluster and code-package flags)."""

from __future__ import annotations

import click

from trainflow.cli.options import backend_for, backend_option, namespace_option
from trainflow.cli.output import columns, emit
from trainflow.cli.watch import age, duration, print_workflow
from trainflow.workflows.backend import WorkflowInfo


@click.command("list")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["json", "yaml", "wide"]),
    default=None,
    help="json/yaml for machines; wide adds each run's accuracy, loss and model version.",
)
@backend_option
@namespace_option
def list_command(output: str | None, backend: str, namespace: str) -> None:
    """List workflows: NAME STATUS AGE DURATION (-o wide: ACCURACY LOSS VERSION too)."""
    target = backend_for(backend, namespace)
    # the table needs no run's dependencies, kinds or roles: the brief listing reads none of their pipelines
    infos = target.list() if output else target.list_brief()
    if output in ("json", "yaml"):
        emit([i.to_dict() for i in infos], output)
        return
    wide = ("ACCURACY", "LOSS", "VERSION") if output == "wide" else ()
    rows = []
    for info in infos:
        cached = sum(s.status == "Cached" for s in info.steps)
        message = "; ".join(filter(None, [info.message, f"{cached} step(s) Cached" if cached else ""]))
        measured = wide_columns(info) if wide else []
        rows.append(
            [
                info.name,
                info.status,
                age(info.created_at),
                duration(info.started_at, info.finished_at),
                *measured,
                message,
            ]
        )
    click.echo(columns(["NAME", "STATUS", "AGE", "DURATION", *wide, "MESSAGE"], rows) if infos else "no workflows")


def wide_columns(info: WorkflowInfo) -> list[str]:
    """A run's accuracy, loss and model version, as `list -o wide` shows them."""
    from trainflow.workflows.runs import shown, summarize

    run = summarize(info)
    return [shown(run.metrics.get("accuracy")), shown(run.metrics.get("loss")), shown(run.model_version)]


@click.command()
@click.argument("name")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None)
@backend_option
@namespace_option
def get(name: str, output: str | None, backend: str, namespace: str) -> None:
    """Show a workflow: steps, durations and outputs (accuracy, model version, URLs), and a study's trials."""
    from trainflow.cli.trials import print_trials, trials_json

    target = backend_for(backend, namespace)
    info = target.get(name)
    if output:
        trials = trials_json(info)
        emit({**info.to_dict(), **({"trials": trials} if trials else {})}, output)
        return
    print_workflow(info, target)
    print_trials(info)
