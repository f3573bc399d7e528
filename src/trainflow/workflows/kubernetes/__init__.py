"""Kubernetes backend: the pipelines as Argo Workflows with Kubeflow training jobs, submitted with the kubernetes client.

The names below load on first use: a local command that imports `kubernetes.options` (the CLI's cluster flags)
pays for neither the compiler nor the backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainflow.lazy_names import lazy_names

if TYPE_CHECKING:
    from trainflow.workflows.kubernetes.backend import KubernetesBackend
    from trainflow.workflows.kubernetes.compiler import compile_pipeline, compile_rbac, to_yaml
    from trainflow.workflows.kubernetes.strict import check_objects, embedded_manifests, problems

_LAZY = {
    "KubernetesBackend": "trainflow.workflows.kubernetes.backend",
    "check_objects": "trainflow.workflows.kubernetes.strict",
    "compile_pipeline": "trainflow.workflows.kubernetes.compiler",
    "compile_rbac": "trainflow.workflows.kubernetes.compiler",
    "embedded_manifests": "trainflow.workflows.kubernetes.strict",
    "problems": "trainflow.workflows.kubernetes.strict",
    "to_yaml": "trainflow.workflows.kubernetes.compiler",
}

__all__ = [
    "KubernetesBackend",
    "check_objects",
    "compile_pipeline",
    "compile_rbac",
    "embedded_manifests",
    "problems",
    "to_yaml",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
