"""The `trainflow` command: a group of small commands, each imported only when it runs.

Every pipeline step is a separate `trainflow step ...` process, so start-up time is per-step
overhead: a step must not pay for importing torch, ONNX Runtime or gRPC when it does not use them.
"""

from __future__ import annotations

import gc
import importlib
import os

import click

from trainflow import __version__
from trainflow.cli.errors import TrainflowGroup
from trainflow.cli.output import setup_logging
from trainflow.cli.step_programs import STEP_COMMANDS
from trainflow.cli.summaries import SUMMARIES

COMMANDS = {
    "data": "trainflow.cli.data:data",
    "train": "trainflow.cli.train:train_command",
    "serve": "trainflow.cli.serve:serve_command",
    "predict": "trainflow.cli.predict:predict_command",
    "run": "trainflow.cli.run:run",
    "submit": "trainflow.cli.workflows:submit",
    "list": "trainflow.cli.listing:list_command",
    "get": "trainflow.cli.listing:get",
    "logs": "trainflow.cli.workflows:logs",
    "delete": "trainflow.cli.workflows:delete",
    "stop": "trainflow.cli.workflows:stop",
    "suspend": "trainflow.cli.suspension:suspend",
    "resume": "trainflow.cli.suspension:resume",
    "retry": "trainflow.cli.workflows:retry",
    "resubmit": "trainflow.cli.workflows:resubmit",
    "services": "trainflow.cli.workflows:services",
    "tensorboard": "trainflow.cli.workflows:tensorboard",
    "compare": "trainflow.cli.compare:compare_command",
    "workflow-runner": "trainflow.cli.runner:workflow_runner",
    "ui": "trainflow.cli.ui:ui_command",
    "compile": "trainflow.cli.compile:compile_command",
    "code-package": "trainflow.cli.code_flags:code_package_command",
    "pipeline": "trainflow.cli.pipeline:pipeline",
    "doctor": "trainflow.cli.doctor:doctor_command",
    "schedule": "trainflow.cli.schedules:schedule",
    "scheduler": "trainflow.cli.schedules:scheduler_command",
    "wait": "trainflow.cli.schedules:wait",
    "watch": "trainflow.cli.schedules:watch",
    "lint": "trainflow.cli.schedules:lint",
}


class LazyGroup(TrainflowGroup):
    """A group whose subcommands are `module:attr` strings, imported on first use (click's lazy pattern)."""

    def __init__(self, *args: object, lazy: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, each lazy command's line made from its summary (cli/summaries.py), not its module."""
        shown: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                summary = SUMMARIES[self.lazy[name]]
                if summary is not None:  # a stand-in click shortens exactly as it would the command's own help
                    shown.append((name, click.Command(name, help=summary)))
                continue
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                shown.append((name, command))
        if shown:
            limit = formatter.width - 6 - max(len(name) for name, _ in shown)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in shown])


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trainflow")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    envvar="TRAINFLOW_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def cli(log_level: str) -> None:
    """From data in an object store to a served model: cache, train, watch, export, serve, query."""
    setup_logging(log_level)


@cli.group(cls=LazyGroup, lazy=STEP_COMMANDS)
def step() -> None:
    """Run one pipeline step (what the local runner and the Argo workflow execute)."""
    from trainflow.cli.step_code import use_code_package

    use_code_package()


def main() -> None:
    # numpy's OpenBLAS starts a thread a core at import, each spinning for work 2^28 cycles before it sleeps: ~0.1 s
    # of CPU in every trainflow process that imports numpy, which does its BLAS in torch or ONNX Runtime if at all.
    # 2^4 has them sleep at once (a BLAS call then wakes them). Before numpy is imported; the user's setting wins.
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    try:
        cli(prog_name="trainflow")
    finally:
        # The interpreter's last collection walks every object a command made (torch's: ~0.3 s of each
        # training step's exit); frozen, they are simply released with the process.
        gc.freeze()
