"""The backends by the name `--backend` gives them: the one place that knows the concrete classes.

The CLI and the dashboard open a backend here and talk to the `Backend` base; each backend is
imported only when it is opened (the Kubernetes client is not loaded for a local command).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainflow.workflows.errors import WorkflowError

if TYPE_CHECKING:
    from trainflow.workflows.backend import Backend
    from trainflow.workflows.kubernetes.options import ClusterOptions


@dataclass(frozen=True)
class Where:
    """What the command line says about where runs live: this machine's home, a cluster's namespace and shape."""

    home: Path
    namespace: str = "default"
    job_kind: str = "pytorchjob"
    options: ClusterOptions | None = None


def _local(where: Where) -> Backend:
    from trainflow.workflows.local.backend import LocalBackend

    if where.options is not None:  # given only by commands with cluster flags: the others skip their module
        from trainflow.workflows.kubernetes.options import ClusterOptions

        if where.options != ClusterOptions():
            raise WorkflowError("cluster flags (--resources, --toleration, --cache-*, ...) need --backend kubernetes")
    return LocalBackend(where.home)


def _kubernetes(where: Where) -> Backend:
    from trainflow.workflows.kubernetes.backend import KubernetesBackend

    return KubernetesBackend(namespace=where.namespace, job_kind=where.job_kind, options=where.options)


BACKENDS: dict[str, Callable[[Where], Backend]] = {"local": _local, "kubernetes": _kubernetes}
# Backends whose steps run where this machine's files are absent: a pipeline file's own code travels to them
# as a code package (workflows/code_packages.py) when its artifacts_url is a shared store.
SHIPS_CODE = frozenset({"kubernetes"})
DEFAULT = "local"  # runs on this machine
COMPILER = "kubernetes"  # the backend whose dry run `trainflow compile` prints


def open_backend(kind: str, where: Where) -> Backend:
    """The backend `--backend kind` names, set up as `where` says."""
    if kind not in BACKENDS:
        raise WorkflowError(f"unknown backend '{kind}': use {' or '.join(BACKENDS)}")
    return BACKENDS[kind](where)
