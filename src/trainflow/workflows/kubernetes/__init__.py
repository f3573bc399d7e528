"""Kubernetes backend: the pipelines as Argo Workflows with Kubeflow training jobs, submitted with the kubernetes client."""

from trainflow.workflows.kubernetes.backend import KubernetesBackend
from trainflow.workflows.kubernetes.compiler import compile_pipeline, compile_rbac, to_yaml
from trainflow.workflows.kubernetes.strict import check_objects, embedded_manifests, problems

__all__ = [
    "KubernetesBackend",
    "check_objects",
    "compile_pipeline",
    "compile_rbac",
    "embedded_manifests",
    "problems",
    "to_yaml",
]
