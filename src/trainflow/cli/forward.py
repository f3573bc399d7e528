"""Cluster services on this machine for the CLI: TensorBoard until Ctrl+C, a model server for one `predict`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from trainflow.cli.output import console
from trainflow.pipelines.roles import MODEL, TENSORBOARD
from trainflow.workflows import WorkflowError
from trainflow.workflows.endpoints import model_server
from trainflow.workflows.kubernetes import KubernetesBackend
from trainflow.workflows.kubernetes.forwarding import forward_service


def wait_for_interrupt() -> None:
    """Block the foreground until Ctrl+C."""
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


def tensorboard_on_cluster(target: KubernetesBackend, name: str, local_port: int) -> None:
    """Forward a workflow's TensorBoard to a loopback port, print its URL, and keep it open until Ctrl+C."""
    with forward_service(target, name, TENSORBOARD, (local_port,)) as forwarded:
        [address] = list(forwarded.addresses.values())[:1]
        console.print(
            f"TensorBoard of {name}: http://{address}  (forwarded to pod {forwarded.pod}; Ctrl+C to stop)",
            soft_wrap=True,
            markup=False,
        )
        wait_for_interrupt()


@contextmanager
def model_server_on_cluster(target: KubernetesBackend, workflow: str, protocol: str) -> Iterator[tuple[str, str]]:
    """The loopback address of `workflow`'s model server port for `protocol`, and the model name it serves."""
    server = model_server(target.get(workflow), up=False)  # the cluster says which pod is ready
    wanted = server.port_for(protocol) if server else None  # TF Serving and V2 share a port per transport
    with forward_service(target, workflow, MODEL) as forwarded:
        if server is None or wanted not in forwarded.addresses:
            raise WorkflowError(
                f"the model server of {workflow} has no {'gRPC' if protocol.endswith('grpc') else 'REST'} port "
                f"(its ports: {', '.join(forwarded.addresses) or 'none'}): pass --server with a port-forward "
                "of your own"
            )
        yield forwarded.addresses[wanted], server.model_name
