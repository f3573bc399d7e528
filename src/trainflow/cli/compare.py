"""`trainflow compare RUN RUN ...`: runs side by side, their parameters and what they measured."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.table import Table

from trainflow.cli.options import backend_option, namespace_option
from trainflow.cli.output import console, emit
from trainflow.cli.workflows import backend_for
from trainflow.workflows import WorkflowError
from trainflow.workflows.backend import Backend
from trainflow.workflows.runs import RunSummary, comparison_rows, differing, shown, summarize
from trainflow.workflows.trials import trial_runs


@click.command("compare")
@click.argument("names", nargs=-1, required=True, metavar="RUN[#TRIAL] RUN[#TRIAL]...")
@click.option("--all", "all_", is_flag=True, help="Every parameter, not only those that differ.")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None)
@backend_option
@namespace_option
def compare_command(names: tuple[str, ...], all_: bool, output: str | None, backend: str, namespace: str) -> None:
    """Runs side by side: the parameters that differ (* and highlighted), final metrics, model version, duration.

    RUN#N is trial N of RUN's study; one RUN alone compares its study's trials.
    """
    target = backend_for(backend, namespace)
    if len(set(names)) == 1 and "#" not in names[0]:
        runs = trial_runs(target.get(names[0]))  # one run: its study's trials, if it tuned
        if len(runs) < 2:
            raise WorkflowError(
                "give two or more different runs (or one run with a study): trainflow compare RUN RUN ..."
            )
    elif len(set(names)) < 2:
        raise WorkflowError("give two or more different runs: trainflow compare RUN RUN ...")
    else:
        runs = [_run_or_trial(target, name) for name in names]
    if output:
        emit({r.name: asdict(r) for r in runs}, output)
        return
    table = Table("", "", *(r.name for r in runs), box=None)
    for label, values in comparison_rows(runs, all_):
        marked = differing(values)
        cells = [shown(v) for v in values]
        table.add_row("*" if marked else "", label, *cells, style="bold yellow" if marked else None)
    console.print(table)
    console.print("* differs between the runs", markup=False)


def _run_or_trial(target: Backend, name: str) -> RunSummary:
    run, _, number = name.partition("#")
    if not number:
        return summarize(target.get(name))
    if not number.isdigit():
        raise WorkflowError(f"'{name[:80]}': name a trial as RUN#NUMBER, e.g. {run}#3")
    found = trial_runs(target.get(run), [int(number)])
    if not found:
        raise WorkflowError(f"run {run} has no trial {number}: `trainflow get {run}` lists its trials")
    return found[0]
