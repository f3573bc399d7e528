"""Workflows on a Kubernetes cluster: create Argo Workflows and read them back with the official client.

The `kubernetes` package is imported on the first API call, which also loads the kubeconfig (or the
in-cluster config); tests inject a `ClusterApi` of their own instead.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from trainflow.errors import PERMANENT_EXIT_CODE, TRANSIENT_EXIT_CODE
from trainflow.pipelines import Pipeline
from trainflow.workflows.backend import StepInfo, WorkflowInfo
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes.compiler import compile_pipeline
from trainflow.workflows.kubernetes.resources import (
    JOB_KINDS,
    STEP_LABEL,
    WORKFLOW_LABEL,
)
from trainflow.workflows.kubernetes.status import workflow_info
from trainflow.workflows.params import inherited_values

log = logging.getLogger(__name__)
ARGO = ("argoproj.io", "v1alpha1")
T = TypeVar("T")


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


class KubernetesBackend:
    """Runs workflows on Argo Workflows; the training step is a PyTorchJob or TFJob."""

    name = "kubernetes"

    def __init__(self, namespace: str = "default", job_kind: str = "pytorchjob", api: ClusterApi | None = None) -> None:
        if job_kind not in JOB_KINDS:
            raise WorkflowError(f"unknown job kind '{job_kind}': use {' or '.join(JOB_KINDS)}")
        self.namespace, self.job_kind, self._api = namespace, job_kind, api

    @property
    def api(self) -> ClusterApi:
        if self._api is None:
            self._api = connect()
        return self._api

    def submit(
        self,
        pipeline: Pipeline,
        values: Mapping[str, str],
        no_cache: bool = False,
        python_path: list[str] | None = None,
    ) -> WorkflowInfo:
        """Compile, check and create the workflow; returns once the cluster accepted it.

        The steps' functions must be importable in the image (`python_path` is a local notion).
        """
        given = {"namespace": self.namespace, **values}
        if given["namespace"] != self.namespace:
            raise WorkflowError(
                f"-p namespace={given['namespace']} differs from --namespace {self.namespace}: give one"
            )
        if pipeline.inherit_from and given.get(pipeline.inherit_from):
            given = self._inherit(pipeline, given, values)
        [workflow] = compile_pipeline(pipeline, given, self.job_kind, memoize=not no_cache)
        name = workflow["metadata"].get("name")
        created = self._call(
            lambda: self.api.custom.create_namespaced_custom_object(*ARGO, self.namespace, "workflows", workflow), name
        )
        log.info(
            "created workflow %s in namespace %s", (created or workflow)["metadata"].get("name", name), self.namespace
        )
        return workflow_info(created or workflow, self.name)

    def _inherit(self, pipeline: Pipeline, given: dict[str, str], explicit: Mapping[str, str]) -> dict[str, str]:
        """Parameters the submission left out take the values of the workflow `inherit_from` names."""
        name = given[pipeline.inherit_from or ""]
        source = self._get_raw(name)
        if source.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/managed-by") != "trainflow":
            raise WorkflowError(f"'{name}' is not a trainflow workflow: {pipeline.name} reads one")
        params = {p["name"]: str(p.get("value", "")) for p in source["spec"].get("arguments", {}).get("parameters", [])}
        return inherited_values(pipeline, given, explicit, params)

    def get(self, name: str) -> WorkflowInfo:
        return workflow_info(self._get_raw(name), self.name)

    def _get_raw(self, name: str) -> dict[str, Any]:
        return self._call(
            lambda: self.api.custom.get_namespaced_custom_object(*ARGO, self.namespace, "workflows", name), name
        )

    def list(self) -> list[WorkflowInfo]:
        """trainflow's workflows in the namespace, newest first."""
        listing = self._call(
            lambda: self.api.custom.list_namespaced_custom_object(
                *ARGO, self.namespace, "workflows", label_selector="app.kubernetes.io/managed-by=trainflow"
            )
        )
        infos = [workflow_info(item, self.name) for item in listing.get("items", [])]
        return sorted(infos, key=lambda i: i.created_at, reverse=True)

    def logs(self, name: str, step: str | None = None, follow: bool = False) -> Iterator[str]:
        """Each step's container log, prefixed with the step name (training: every replica's pod)."""
        info = self.get(name)
        names = [s.name for s in info.steps]
        if step is not None and step not in names:
            raise WorkflowError(f"workflow {name} has no step '{step}': its steps are {', '.join(names)}")
        for wanted in [step] if step else names:
            # A service's log never ends: following it would never reach the next step.
            follow_step = follow and not next(s.service for s in info.steps if s.name == wanted)
            for pod, container in self._step_pods(name, wanted):
                text = self._call(
                    lambda: self.api.core.read_namespaced_pod_log(
                        name=pod,  # noqa: B023
                        namespace=self.namespace,
                        container=container,  # noqa: B023
                        follow=follow_step,  # noqa: B023
                    ),
                    pod,
                )
                for line in (text or "").splitlines():
                    yield f"{wanted}: {line}"

    def _step_pods(self, workflow: str, step: str) -> builtins.list[tuple[str, str]]:
        """(pod, container) pairs with a step's log: Argo's pod for the step, then its training or service pods."""
        argo = self._pods(f"workflows.argoproj.io/workflow={workflow}")
        found = [(_field(p, "metadata", "name"), "main") for p in argo if _node_step(p) == step]
        ours = self._pods(f"{WORKFLOW_LABEL}={workflow},{STEP_LABEL}={step}")
        return found + [
            (_field(p, "metadata", "name"), _field(_field(p, "spec", "containers")[0], "name")) for p in ours
        ]

    def _pods(self, selector: str) -> builtins.list[Any]:
        listing = self._call(lambda: self.api.core.list_namespaced_pod(self.namespace, label_selector=selector))
        return sorted(_items(listing), key=lambda p: _field(p, "metadata", "name"))

    def delete(self, name: str) -> None:
        """Delete the workflow, its training job (owned by it) and its Deployments and Services; the cache stays."""
        self._call(
            lambda: self.api.custom.delete_namespaced_custom_object(*ARGO, self.namespace, "workflows", name), name
        )
        selector = f"{WORKFLOW_LABEL}={name}"
        for deployment in _items(
            self._call(lambda: self.api.apps.list_namespaced_deployment(self.namespace, label_selector=selector))
        ):
            self._call(
                lambda: self.api.apps.delete_namespaced_deployment(
                    _field(deployment, "metadata", "name"),  # noqa: B023 - _call runs it at once
                    self.namespace,
                )
            )
        for service in _items(
            self._call(lambda: self.api.core.list_namespaced_service(self.namespace, label_selector=selector))
        ):
            self._call(
                lambda: self.api.core.delete_namespaced_service(
                    _field(service, "metadata", "name"),  # noqa: B023 - _call runs it at once
                    self.namespace,
                )
            )

    def stop(self, name: str) -> WorkflowInfo:
        raise WorkflowError(
            f"the kubernetes backend does not stop workflows: run `argo stop {name} -n {self.namespace}`"
        )

    def retry(self, name: str, values: Mapping[str, str] | None = None) -> WorkflowInfo:
        raise WorkflowError(
            f"the kubernetes backend does not retry workflows: run `argo retry {name} -n {self.namespace}` "
            "(with -p NAME=VALUE to change parameters)"
        )

    def resubmit(
        self, name: str, new_name: str | None = None, no_cache: bool = False, values: Mapping[str, str] | None = None
    ) -> WorkflowInfo:
        raise WorkflowError(
            f"the kubernetes backend does not resubmit workflows: run `argo resubmit {name} -n "
            f"{self.namespace}` (memoized steps are reused; -p NAME=VALUE changes parameters)"
        )

    def services(self) -> builtins.list[tuple[WorkflowInfo, StepInfo]]:
        raise WorkflowError(
            f"the kubernetes backend does not list services: run `kubectl get services -n "
            f"{self.namespace} -l app.kubernetes.io/managed-by=trainflow`"
        )

    def progress(self, name: str, step: str) -> builtins.list[dict[str, Any]]:
        return []  # progress files stay in the pods: `trainflow logs` shows the training lines

    def watchable(self) -> bool:
        return False

    def _call(self, request: Callable[[], T], name: str | None = None) -> T:
        """Run one API request; map the client's failures to one-line WorkflowErrors."""
        try:
            return request()
        except WorkflowError:
            raise
        except Exception as exc:  # noqa: BLE001 - the client raises ApiException, urllib3 and socket errors
            raise _as_workflow_error(exc, name, self.namespace) from None


def _as_workflow_error(exc: Exception, name: str | None, namespace: str) -> WorkflowError:
    status = getattr(exc, "status", None)
    if status == 404 and name:
        return WorkflowError(
            f"workflow {name} not found in namespace {namespace}: see trainflow list --backend kubernetes"
        )
    if status == 409 and name:
        return WorkflowError(f"workflow {name} already exists in namespace {namespace}: pick another name or delete it")
    if status in (401, 403):
        return WorkflowError(
            f"the cluster refused the request ({status} {getattr(exc, 'reason', '')}): "
            "check your credentials and apply `trainflow compile rbac`"
        )
    if status is not None:
        return WorkflowError(
            f"the cluster answered {status} {getattr(exc, 'reason', '')}: {_body_message(exc)}",
            exit_code=PERMANENT_EXIT_CODE if status < 500 else TRANSIENT_EXIT_CODE,
        )
    reason = getattr(exc, "reason", None) or exc  # urllib3's MaxRetryError wraps the connection error
    first_line = (str(reason).splitlines() or [""])[0][:300]
    return WorkflowError(
        f"cannot reach a Kubernetes cluster ({first_line}): set KUBECONFIG or run inside a cluster",
        exit_code=TRANSIENT_EXIT_CODE,
    )


def _body_message(exc: Exception) -> str:
    import json

    try:
        return str(json.loads(getattr(exc, "body", "") or "{}").get("message", "")) or "no details"
    except ValueError:
        return "no details"


def _items(listing: Any) -> list[Any]:
    return list(listing.get("items", []) if isinstance(listing, dict) else getattr(listing, "items", []) or [])


def _node_step(pod: Any) -> str:
    """The step an Argo pod ran: its node name is `<workflow>.<step>` or `<workflow>.<step>(<attempt>)`."""
    node = (_field(pod, "metadata", "annotations") or {}).get("workflows.argoproj.io/node-name", "")
    return node.split(".", 1)[-1].split("(", 1)[0]


def _field(obj: Any, *path: str) -> Any:
    """A field of a client model object or of a plain dict (what tests' fake clients return)."""
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return obj
