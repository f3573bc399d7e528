"""`trainflow compare RUN RUN ...`: runs side by side, their parameters and what they measured."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.table import Table

from trainflow.cli.options import backend_option, namespace_option
from trainflow.cli.output import console, emit
from trainflow.cli.workflows import backend_for
from trainflow.workflows import WorkflowError
from trainflow.workflows.runs import comparison_rows, differing, shown, summarize


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
    for label, values in comparison_rows(runs, all_):
        marked = differing(values)
        cells = [shown(v) for v in values]
        table.add_row("*" if marked else "", label, *cells, style="bold yellow" if marked else None)
    console.print(table)
    console.print("* differs between the runs", markup=False)
