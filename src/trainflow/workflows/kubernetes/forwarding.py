"""A workflow's TensorBoard or model server on the cluster, brought to loopback ports on this machine.

A service is found by the role the compiler labels it with (`trainflow.io/serves: model`, from the step's
`serves`), never by its step's name or its command, and reached through a ready pod behind its Service's
selector (as `kubectl port-forward svc/...`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainflow.pipelines.roles import MODEL, TENSORBOARD
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import portforward
from trainflow.workflows.kubernetes.objects import field_of, items_of
from trainflow.workflows.kubernetes.resources import SERVES_LABEL, WORKFLOW_LABEL

if TYPE_CHECKING:
    from trainflow.workflows.kubernetes.backend import KubernetesBackend

MODEL_SERVER = MODEL
WHAT = {TENSORBOARD: "TensorBoard", MODEL: "model server"}


@dataclass(frozen=True)
class Forwarded:
    """A service reached from here: its Service, the pod behind it, and a local address per port name."""

    service: str
    pod: str
    addresses: dict[str, str]


def service_of(backend: KubernetesBackend, workflow: str, serves: str) -> Any:
    """The Service in front of the step of `workflow` labelled as serving `serves` (the first by name)."""
    backend.get(workflow)  # a missing workflow is its own clear line
    selector = f"{WORKFLOW_LABEL}={workflow},{SERVES_LABEL}={serves}"
    found = items_of(
        backend.call(lambda: backend.api.core.list_namespaced_service(backend.namespace, label_selector=selector))
    )
    if not found:
        raise WorkflowError(
            f"workflow {workflow} has no running {WHAT.get(serves, serves)} in namespace {backend.namespace}: "
            f"see `trainflow get {workflow} --backend kubernetes -n {backend.namespace}`"
        )
    return min(found, key=lambda s: str(field_of(s, "metadata", "name")))


def ready_pod(backend: KubernetesBackend, service: Any) -> Any:
    """A running, ready pod the Service's selector picks (its first by name, as kubectl does)."""
    name = field_of(service, "metadata", "name")
    selector = ",".join(f"{k}={v}" for k, v in sorted((field_of(service, "spec", "selector") or {}).items()))
    if not selector:
        raise WorkflowError(f"Service {name} selects no pods: it cannot be forwarded")
    pods = items_of(
        backend.call(lambda: backend.api.core.list_namespaced_pod(backend.namespace, label_selector=selector))
    )
    ready = [p for p in pods if _is_ready(p)]
    if not ready:
        raise WorkflowError(
            f"no ready pod behind Service {name} in namespace {backend.namespace} ({len(pods)} pod(s), none ready): "
            f"see `kubectl get pods -n {backend.namespace} -l {selector}`"
        )
    return min(ready, key=lambda p: field_of(p, "metadata", "name"))


def _is_ready(pod: Any) -> bool:
    if field_of(pod, "metadata", "deletion_timestamp") or field_of(pod, "metadata", "deletionTimestamp"):
        return False
    if field_of(pod, "status", "phase") != "Running":
        return False
    conditions = field_of(pod, "status", "conditions") or []
    return any(field_of(c, "type") == "Ready" and field_of(c, "status") == "True" for c in conditions)


def pod_ports(service: Any, pod: Any) -> dict[str, int]:
    """Each Service port's name and the pod port it reaches (a named targetPort is the container's port of that name)."""
    named = {
        field_of(p, "name"): field_of(p, "container_port") or field_of(p, "containerPort")
        for c in field_of(pod, "spec", "containers") or []
        for p in field_of(c, "ports") or []
    }
    found = {}
    for port in field_of(service, "spec", "ports") or []:
        target = field_of(port, "target_port") or field_of(port, "targetPort") or field_of(port, "port")
        number = named.get(target) if isinstance(target, str) else target
        found[field_of(port, "name") or str(field_of(port, "port"))] = int(number or field_of(port, "port"))
    return found


@contextmanager
def forward_service(
    backend: KubernetesBackend,
    workflow: str,
    serves: str,
    local_ports: Sequence[int] = (),
    open_stream: portforward.OpenStream | None = None,
) -> Iterator[Forwarded]:
    """Every port of the workflow's service that serves `serves` (model, tensorboard) on loopback until the block ends.

    `local_ports` are the loopback ports for the Service's ports in order (0 or none given: a free port).
    """
    service = service_of(backend, workflow, serves)
    pod = ready_pod(backend, service)
    pod_name = str(field_of(pod, "metadata", "name"))
    opener = open_stream or portforward.api_stream(backend.api.core, backend.namespace)
    with ExitStack() as stack:
        addresses = {}
        for index, (name, port) in enumerate(pod_ports(service, pod).items()):
            local = local_ports[index] if index < len(local_ports) else 0
            forward = portforward.PortForward(opener, pod_name, port, local)
            stack.enter_context(forward)
            addresses[name] = forward.address
        yield Forwarded(str(field_of(service, "metadata", "name")), pod_name, addresses)
