"""The steps that run users' Python: `trainflow step call` and `trainflow step train-function`."""

from __future__ import annotations

from typing import Any

import click

from trainflow.cli.options import outputs_option
from trainflow.cli.output import write_outputs

artifact_option = click.option(
    "--artifact",
    "artifacts",
    multiple=True,
    metavar="KEY",
    help="An output naming a local file or directory, published under $TRAINFLOW_ARTIFACTS_URL; repeatable.",
)
input_option = click.option(
    "--input",
    "inputs",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="A keyword argument for the function; repeatable.",
)


@click.command("call")
@click.argument("function")
@input_option
@artifact_option
@outputs_option
def call_step(
    function: str, inputs: tuple[tuple[str, str], ...], artifacts: tuple[str, ...], outputs: str | None
) -> None:
    """Pipeline step: call FUNCTION (module:function) with the inputs; its returned dict is the outputs."""
    from trainflow.pipelines.calling import call_function, import_function
    from trainflow.tracking.step_run import step_run

    with step_run(function, "call"):  # tracking on: the function's plain mlflow calls land in the step's run
        result = _published(call_function(import_function(function), dict(inputs), function), artifacts)
    click.echo(f"{function} -> {result}")
    write_outputs(outputs, result)


@click.command("train-function")
@click.argument("function")
@click.option(
    "--workers", default=1, show_default=True, type=int, help="Local worker processes (a PyTorchJob's world wins)."
)
@input_option
@artifact_option
@outputs_option
def train_function_step(
    function: str, workers: int, inputs: tuple[tuple[str, str], ...], artifacts: tuple[str, ...], outputs: str | None
) -> None:
    """Pipeline step: run FUNCTION on every worker of a torch.distributed world; rank 0's dict is the outputs."""
    from trainflow.pipelines.train_function import run_training_function
    from trainflow.tracking.step_run import step_run

    if workers < 1:
        raise click.BadParameter(f"--workers must be at least 1, not {workers}")
    with step_run(function, "train"):  # tracking on: its workers' curves and plain mlflow calls land in this run
        result = run_training_function(function, dict(inputs), workers)
    if result is None:
        click.echo(f"{function}: this node's workers finished; the node hosting rank 0 reports the outputs")
        return
    result = _published(result, artifacts)
    click.echo(f"{function} -> {result}")
    write_outputs(outputs, result)


def _published(result: dict[str, Any], artifacts: tuple[str, ...]) -> dict[str, Any]:
    from trainflow.pipelines.artifacts import publish_where_told

    return publish_where_told(result, artifacts)
