"""A run's services on this machine for the CLI: TensorBoard (until Ctrl+C where forwarded), a model server for
one `predict`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click

from trainflow.cli.output import console
from trainflow.pipelines.roles import MODEL, TENSORBOARD
from trainflow.workflows import WorkflowError
from trainflow.workflows.backend import Backend
from trainflow.workflows.endpoints import model_server


def wait_for_interrupt() -> None:
    """Block the foreground until Ctrl+C."""
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


def show_tensorboard(target: Backend, name: str, local_port: int) -> None:
    """Print the URL of a run's TensorBoard; one the backend forwards stays open until Ctrl+C."""
    with target.reach(name, TENSORBOARD, (local_port,)) as reached:
        [address] = list(reached.addresses.values())[:1]
        if not reached.via:
            console.print(f"http://{address}/")
            return
        console.print(
            f"TensorBoard of {name}: http://{address}  ({reached.via}; Ctrl+C to stop)", soft_wrap=True, markup=False
        )
        wait_for_interrupt()


@contextmanager
def model_server_of(target: Backend, workflow: str, protocol: str) -> Iterator[tuple[str, str]]:
    """The address here of `workflow`'s model server port for `protocol`, and the model name it serves."""
    with target.reach(workflow, MODEL) as reached:
        server = model_server(target.get(workflow), up=False)
        wanted = server.port_for(protocol) if server else None  # TF Serving and V2 share a port per transport
        if server is None or wanted not in reached.addresses:
            raise WorkflowError(
                f"the model server of {workflow} has no {'gRPC' if protocol.endswith('grpc') else 'REST'} port "
                f"(its ports: {', '.join(reached.addresses) or 'none'}): pass --server with a port-forward "
                "of your own"
            )
        address = reached.addresses[wanted]
        click.echo(f"using the model server of workflow {workflow} at {address} (--server picks another)", err=True)
        yield address, server.model_name
