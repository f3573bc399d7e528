"""A run's studies as `trainflow get` shows them: a trials table per `Tune` step, the best marked."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from trainflow.cli.output import console
from trainflow.workflows.backend import WorkflowInfo
from trainflow.workflows.runs import shown
from trainflow.workflows.trials import StudyRecord, studies

if TYPE_CHECKING:
    from rich.table import Table


def trials_json(info: WorkflowInfo) -> list[dict[str, Any]]:
    """Every trial of every study of the run, each with its study's step name and objective (`get -o json`'s trials)."""
    return [
        {"study": step, "objective": study.objective, **trial}
        for step, study in studies(info).items()
        for trial in study.as_json()["trials"]
    ]


def print_trials(info: WorkflowInfo) -> None:
    """A table per study: number, parameters, objective value, state, steps trained, duration; * marks the best."""
    for step, study in studies(info).items():
        console.print(_table(step, study))


def _table(step: str, study: StudyRecord) -> Table:
    from rich.table import Table

    names = list(dict.fromkeys(k for t in study.trials for k in t.params))
    table = Table(
        "",
        "#",
        *names,
        study.objective,
        "state",
        "steps",
        "duration",
        box=None,
        title=f"{step}: trials",
        title_justify="left",
    )
    for trial in study.trials:
        table.add_row(
            "*" if trial.best else "",
            str(trial.number),
            *(_param(trial.params.get(n)) for n in names),
            shown(trial.value),
            trial.state if not trial.error else f"{trial.state}: {trial.error[:60]}",
            str(trial.steps),
            "-" if trial.duration is None else f"{trial.duration:.1f}s",
            style="bold green" if trial.best else None,
        )
    return table


def _param(value: str | None) -> str:
    """A float parameter to 4 significant digits (a sampled learning rate has 17)."""
    if value is None:
        return "-"
    try:
        number = json.loads(value)
    except ValueError:
        return value
    return f"{number:.4g}" if isinstance(number, float) else value
