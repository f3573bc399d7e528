"""`trainflow suspend NAME` and `trainflow resume NAME`: hold a running workflow between steps, then let it go on."""

from __future__ import annotations

import click

from trainflow.cli.options import backend_option, namespace_option
from trainflow.cli.output import console
from trainflow.cli.workflows import backend_for


@click.command()
@click.argument("name")
@backend_option
@namespace_option
def suspend(name: str, backend: str, namespace: str) -> None:
    """Start no new step of a running workflow until `trainflow resume` (running steps finish)."""
    console.print(f"{name}: {backend_for(backend, namespace).suspend(name).status}")


@click.command()
@click.argument("name")
@backend_option
@namespace_option
def resume(name: str, backend: str, namespace: str) -> None:
    """Let a suspended workflow start steps again."""
    console.print(f"{name}: {backend_for(backend, namespace).resume(name).status}")
