"""Where library errors become one line on stderr and an exit code: the CLI's one edge."""

from __future__ import annotations

from typing import Any

import click

from trainflow.errors import TrainflowError


class CliError(click.ClickException):
    """A TrainflowError, shown as one line with the exit code it carries."""

    def __init__(self, error: TrainflowError) -> None:
        super().__init__(error.message)
        self.exit_code = error.exit_code  # type: ignore[misc]  # click declares it on the class; per error here

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class TrainflowGroup(click.Group):
    """A click group that turns TrainflowError from any subcommand into a CliError."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrainflowError as exc:
            raise CliError(exc) from None
