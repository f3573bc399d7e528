"""`trainflow ui`: the dashboard (workflows, DAG, logs, curves, try the model) in a browser."""

from __future__ import annotations

import click

from trainflow.cli.options import backend_option, namespace_option
from trainflow.cli.output import console
from trainflow.cli.workflows import backend_for
from trainflow.settings import trainflow_home
from trainflow.ui import serve_ui
from trainflow.ui.server import DEFAULT_HOST, DEFAULT_PORT


@click.command("ui")
@click.option(
    "--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on (0.0.0.0: every interface)."
)
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on."
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests addressed to NAME (repeatable; '*': any). Loopback and --host always work.",
)
@backend_option
@namespace_option
def ui_command(host: str, port: int, allowed_hosts: tuple[str, ...], backend: str, namespace: str) -> None:
    """Serve the dashboard: workflows live, their DAG, logs and curves, and a canvas to try the model."""
    target = backend_for(backend, namespace)
    target.list()  # no cluster, no access, no usable state: one line now rather than an empty page
    serve_ui(
        trainflow_home(),
        host,
        port,
        on_ready=lambda url: console.print(f"Dashboard: {url}  (Ctrl+C to stop)"),
        allowed_hosts=allowed_hosts,
        backend=target,
    )
