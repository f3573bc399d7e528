"""Cluster services on this machine for the CLI: TensorBoard until Ctrl+C, a model server for one `predict`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from trainflow.cli.output import console
from trainflow.workflows import WorkflowError
from trainflow.workflows.kubernetes import KubernetesBackend
from trainflow.workflows.kubernetes.forwarding import MODEL_SERVER, TENSORBOARD, forward_service


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
    model_name = target.get(workflow).params.get("model-name", "")
    wanted = "rest" if "rest" in protocol else "grpc"  # TF Serving and V2 share a port per transport
    with forward_service(target, workflow, MODEL_SERVER) as forwarded:
        if wanted not in forwarded.addresses:
            raise WorkflowError(
                f"the model server of {workflow} has no port named {wanted} (its ports: "
                f"{', '.join(forwarded.addresses) or 'none'}): pass --server with a port-forward of your own"
            )
        yield forwarded.addresses[wanted], model_name
