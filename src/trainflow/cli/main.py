"""The `trainflow` command: a group of small commands, each registered from its own module."""

from __future__ import annotations

import click

from trainflow import __version__
from trainflow.cli import data
from trainflow.cli import export as export_cli
from trainflow.cli import train as train_cli
from trainflow.cli import run as run_cli
from trainflow.cli import steps as steps_cli
from trainflow.cli import workflows as wf_cli
from trainflow.cli import serve as serve_cli
from trainflow.cli import predict as predict_cli
from trainflow.cli.errors import TrainflowGroup
from trainflow.cli.output import setup_logging


@click.group(cls=TrainflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trainflow")
@click.option("--log-level", default="INFO", show_default=True, envvar="TRAINFLOW_LOG_LEVEL",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def cli(log_level: str) -> None:
    """From data in an object store to a served model: cache, train, watch, export, serve, query."""
    setup_logging(log_level)


@cli.group()
def step() -> None:
    """Run one pipeline step (what the local runner and the Argo workflow execute)."""


cli.add_command(data.data)
step.add_command(data.download_dataset_step)
cli.add_command(train_cli.train_command)
step.add_command(train_cli.train_model_step)
step.add_command(export_cli.export_model_step)
step.add_command(steps_cli.get_workflow_info_step)
step.add_command(steps_cli.tensorboard_step)
cli.add_command(run_cli.run)
cli.add_command(serve_cli.serve_command)
step.add_command(serve_cli.serve_model_step)
cli.add_command(predict_cli.predict_command)
for command in (wf_cli.submit, wf_cli.list_command, wf_cli.get, wf_cli.logs, wf_cli.delete, wf_cli.stop, wf_cli.retry,
                wf_cli.resubmit, wf_cli.services, wf_cli.tensorboard, wf_cli.workflow_runner):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="trainflow")
