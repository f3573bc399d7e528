"""The Kubernetes API clients the backend, port-forwarding and `doctor` use, and how they connect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainflow.workflows.errors import WorkflowError

ARGO = ("argoproj.io", "v1alpha1")


@dataclass
class ClusterApi:
    """The client APIs the backend uses (kubernetes.client's CustomObjectsApi, CoreV1Api, AppsV1Api; `doctor`
    also reads RbacAuthorizationV1Api and StorageV1Api when given)."""

    custom: Any
    core: Any
    apps: Any
    rbac: Any = None
    storage: Any = None


def connect() -> ClusterApi:
    """Load the kubeconfig, else the in-cluster config; no cluster is one clear error."""
    try:
        from kubernetes import client, config
    except ImportError:
        raise WorkflowError(
            "the kubernetes backend needs the kubernetes package: pip install 'trainflow[kubernetes]'"
        ) from None
    try:
        config.load_kube_config()
    except Exception as kube_error:  # noqa: BLE001 - any failure here means "try in-cluster"
        try:
            config.load_incluster_config()
        except config.ConfigException:
            raise WorkflowError(
                f"cannot reach a Kubernetes cluster (no usable kubeconfig: {kube_error}; not running in a "
                "cluster): set KUBECONFIG or run inside a cluster"
            ) from None
    configuration = client.Configuration.get_default_copy()
    configuration.retries = 0  # an unreachable server is one clear error now, not three logged retries first
    api_client = client.ApiClient(configuration)
    return ClusterApi(
        client.CustomObjectsApi(api_client),
        client.CoreV1Api(api_client),
        client.AppsV1Api(api_client),
        client.RbacAuthorizationV1Api(api_client),
        client.StorageV1Api(api_client),
    )
