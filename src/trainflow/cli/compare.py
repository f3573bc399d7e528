"""`trainflow compare RUN RUN ...`: runs side by side, their parameters and what they measured."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.table import Table

from trainflow.cli.options import backend_option, namespace_option
from trainflow.cli.output import console, emit
from trainflow.cli.workflows import backend_for
from trainflow.workflows import WorkflowError
from trainflow.workflows.runs import RunSummary, differing, shown, summarize

FIRST_METRICS = ("accuracy", "loss", "global_step")  # what a comparison reads first; the others follow by name


@click.command("compare")
@click.argument("names", nargs=-1, required=True, metavar="RUN RUN...")
@click.option("--all", "all_", is_flag=True, help="Every parameter, not only those that differ.")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None)
@backend_option
@namespace_option
def compare_command(names: tuple[str, ...], all_: bool, output: str | None, backend: str, namespace: str) -> None:
    """Runs side by side: the parameters that differ (* and highlighted), final metrics, model version, duration."""
    if len(set(names)) < 2:
        raise WorkflowError("give two or more different runs: trainflow compare RUN RUN ...")
    target = backend_for(backend, namespace)
    runs = [summarize(target.get(name)) for name in names]
    if output:
        emit({r.name: asdict(r) for r in runs}, output)
        return
    table = Table("", "", *names, box=None)
    for label, values in rows(runs, all_):
        marked = differing(values)
        cells = [shown(v) for v in values]
        table.add_row("*" if marked else "", label, *cells, style="bold yellow" if marked else None)
    console.print(table)
    console.print("* differs between the runs", markup=False)


def rows(runs: list[RunSummary], all_: bool) -> list[tuple[str, list[object]]]:
    """(label, a value per run): status, duration, model version, the metrics, then the parameters."""
    found: list[tuple[str, list[object]]] = [
        ("status", [r.status for r in runs]),
        ("duration (s)", [None if r.duration is None else round(r.duration, 1) for r in runs]),
        ("model version", [r.model_version for r in runs]),
    ]
    metrics = dict.fromkeys(k for k in FIRST_METRICS if any(k in r.metrics for r in runs))
    metrics.update(dict.fromkeys(sorted({k for r in runs for k in r.metrics} - set(metrics))))
    found += [(name, [r.metrics.get(name) for r in runs]) for name in metrics]
    params = dict.fromkeys(k for r in runs for k in r.params)
    for name in params:
        values: list[object] = [r.params.get(name) for r in runs]
        if all_ or differing(values):
            found.append((f"-p {name}", values))
    return found
