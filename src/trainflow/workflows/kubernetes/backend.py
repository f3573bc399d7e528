"""Workflows on a Kubernetes cluster: create Argo Workflows and read them back with the official client.

The `kubernetes` package is imported on the first API call, which also loads the kubeconfig (or the
in-cluster config); tests inject a `ClusterApi` of their own instead.
"""

from __future__ import annotations

import builtins
import copy
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any, TypeVar

from trainflow.errors import PERMANENT_EXIT_CODE, TRANSIENT_EXIT_CODE
from trainflow.pipelines import Pipeline, PipelineError
from trainflow.pipelines.builtin import PIPELINES
from trainflow.workflows.backend import (
    PENDING,
    RUNNING,
    SUCCEEDED,
    Reached,
    StepInfo,
    Submission,
    WorkflowInfo,
)
from trainflow.workflows.doctor import Check
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes.cluster_api import ARGO, ClusterApi, connect
from trainflow.workflows.kubernetes.compiler import compile_pipeline
from trainflow.workflows.kubernetes.cron import CronSchedules
from trainflow.workflows.kubernetes.objects import field_of, items_of
from trainflow.workflows.kubernetes.options import ClusterOptions
from trainflow.workflows.kubernetes.render import NAME_PARAM_ANNOTATION, NAME_SUFFIX_ANNOTATION, PIPELINE_LABEL
from trainflow.workflows.kubernetes.resources import (
    JOB_KINDS,
    STEP_LABEL,
    WORKFLOW_LABEL,
)
from trainflow.workflows.kubernetes.status import workflow_info
from trainflow.workflows.kubernetes.suspension import patch as suspension_patch

__all__ = ["ARGO", "ClusterApi", "KubernetesBackend", "connect"]  # ClusterApi and connect live in cluster_api

log = logging.getLogger(__name__)
T = TypeVar("T")
MANAGED = "app.kubernetes.io/managed-by=trainflow"


class KubernetesBackend(CronSchedules):
    """Runs workflows on Argo Workflows; the training step is a PyTorchJob or TFJob."""

    name = "kubernetes"
    poll_seconds = 2.0  # each read is an API request: a follower must not load the API server
    pods_track_from_secret = True  # a tracking-secret parameter gives every pod MLflow's URI (tracking_env.py)

    def __init__(
        self,
        namespace: str = "default",
        job_kind: str = "pytorchjob",
        api: ClusterApi | None = None,
        options: ClusterOptions | None = None,
    ) -> None:
        if job_kind not in JOB_KINDS:
            raise WorkflowError(f"unknown job kind '{job_kind}': use {' or '.join(JOB_KINDS)}")
        self.namespace, self.job_kind, self._api = namespace, job_kind, api
        self.options = options or ClusterOptions()

    @property
    def api(self) -> ClusterApi:
        if self._api is None:
            self._api = connect()
        return self._api

    @property
    def flags(self) -> str:
        return f"--backend {self.name} -n {self.namespace}"

    # -- submit --------------------------------------------------------------------------------
    def _given(self, pipeline: Pipeline, values: Mapping[str, str]) -> dict[str, str]:
        """The values with the backend's namespace, where the pipeline declares one (a different one is refused)."""
        given = {"namespace": self.namespace, **values}
        if given["namespace"] != self.namespace:
            raise WorkflowError(
                f"-p namespace={given['namespace']} differs from --namespace {self.namespace}: give one"
            )
        if all(p.name != "namespace" for p in pipeline.params):
            del given["namespace"]  # not a parameter of this pipeline: the backend's own setting (see _complete)
        return given

    def _complete(self, pipeline: Pipeline, values: dict[str, str]) -> dict[str, str]:
        """The namespace the run's objects go to, for a pipeline that does not declare it."""
        return {**values, "namespace": values.get("namespace", self.namespace)}

    def _params_of(self, name: str, pipeline: Pipeline) -> dict[str, str]:
        """The parameters trainflow workflow `name` ran with."""
        source = self._get_raw(name)
        if source.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/managed-by") != "trainflow":
            raise WorkflowError(f"'{name}' is not a trainflow workflow: {pipeline.name} reads one")
        return {p["name"]: str(p.get("value", "")) for p in source["spec"].get("arguments", {}).get("parameters", [])}

    def _dryrun(self, run: Submission) -> list[dict[str, Any]]:
        """The checked Argo Workflow (what `trainflow compile` prints; the steps' functions must import in the image)."""
        options = replace(self.options, key_folder=run.python_path[0] if run.python_path else "")
        return compile_pipeline(run.pipeline, run.values, self.job_kind, memoize=not run.no_cache, options=options)

    def _start(self, run: Submission) -> WorkflowInfo:
        """Create the compiled workflow; returns once the cluster accepted it."""
        [workflow] = self._dryrun(run)
        name = workflow["metadata"].get("name")
        created = self.call(
            lambda: self.api.custom.create_namespaced_custom_object(*ARGO, self.namespace, "workflows", workflow), name
        )
        log.info(
            "created workflow %s in namespace %s", (created or workflow)["metadata"].get("name", name), self.namespace
        )
        return workflow_info(created or workflow, self.name)

    def get(self, name: str) -> WorkflowInfo:
        return workflow_info(self._get_raw(name), self.name)

    def _get_raw(self, name: str) -> dict[str, Any]:
        return self.call(
            lambda: self.api.custom.get_namespaced_custom_object(*ARGO, self.namespace, "workflows", name), name
        )

    def list(self) -> list[WorkflowInfo]:
        """trainflow's workflows in the namespace, newest first."""
        listing = self.call(
            lambda: self.api.custom.list_namespaced_custom_object(
                *ARGO, self.namespace, "workflows", label_selector=MANAGED
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
                for line in self._pod_log(pod, container, follow_step):
                    yield f"{wanted}: {line}"

    def _pod_log(self, pod: str, container: str, follow: bool) -> Iterator[str]:
        """A container's log lines; with `follow`, streamed as the container writes them until it ends."""
        if not follow:
            text = self.call(
                lambda: self.api.core.read_namespaced_pod_log(
                    name=pod, namespace=self.namespace, container=container, follow=False
                ),
                pod,
                pod=True,
            )
            yield from (text or "").splitlines()
            return
        stream = self.call(
            lambda: self.api.core.read_namespaced_pod_log(
                name=pod, namespace=self.namespace, container=container, follow=True, _preload_content=False
            ),
            pod,
            pod=True,
        )
        pending = b""
        try:
            for chunk in stream.stream(4096):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                yield from (line.decode("utf-8", "replace") for line in lines)
        finally:
            stream.release_conn()
        if pending:
            yield pending.decode("utf-8", "replace")

    def _step_pods(self, workflow: str, step: str) -> builtins.list[tuple[str, str]]:
        """(pod, container) pairs with a step's log: Argo's pod for the step, then its training or service pods."""
        argo = self._pods(f"workflows.argoproj.io/workflow={workflow}")
        found = [(field_of(p, "metadata", "name"), "main") for p in argo if _node_step(p) == step]
        ours = self._pods(f"{WORKFLOW_LABEL}={workflow},{STEP_LABEL}={step}")
        return found + [
            (field_of(p, "metadata", "name"), field_of(field_of(p, "spec", "containers")[0], "name")) for p in ours
        ]

    def _pods(self, selector: str) -> builtins.list[Any]:
        listing = self.call(lambda: self.api.core.list_namespaced_pod(self.namespace, label_selector=selector))
        return sorted(items_of(listing), key=lambda p: field_of(p, "metadata", "name"))

    def delete(self, name: str) -> None:
        """Delete the workflow, its training job (owned by it) and its Deployments and Services; the cache stays."""
        self.call(
            lambda: self.api.custom.delete_namespaced_custom_object(*ARGO, self.namespace, "workflows", name), name
        )
        selector = f"{WORKFLOW_LABEL}={name}"
        kinds = (
            (self.api.apps.list_namespaced_deployment, self.api.apps.delete_namespaced_deployment),
            (self.api.core.list_namespaced_service, self.api.core.delete_namespaced_service),
        )
        for list_them, delete_one in kinds:
            listing = self.call(lambda: list_them(self.namespace, label_selector=selector))  # noqa: B023 - at once
            for obj in items_of(listing):
                object_name = field_of(obj, "metadata", "name")
                self.call(lambda: delete_one(object_name, self.namespace))  # noqa: B023 - call runs it at once

    def stop(self, name: str) -> WorkflowInfo:
        """Argo's stop: no new step starts, running ones are stopped, the exit handler still runs."""
        info = self.get(name)
        if info.status not in (PENDING, RUNNING):
            raise WorkflowError(f"workflow {name} is {info.status}, not running")
        body = {"spec": {"shutdown": "Stop"}}
        self.call(
            lambda: self.api.custom.patch_namespaced_custom_object(*ARGO, self.namespace, "workflows", name, body),
            name,
        )
        return self.get(name)

    def suspend(self, name: str) -> WorkflowInfo:
        """Argo's suspend: no new step starts, running pods finish."""
        return self._suspension(name, True)

    def resume(self, name: str) -> WorkflowInfo:
        return self._suspension(name, False)

    def _suspension(self, name: str, suspend: bool) -> WorkflowInfo:
        body = suspension_patch(name, self.get(name).status, suspend)
        self.call(
            lambda: self.api.custom.patch_namespaced_custom_object(*ARGO, self.namespace, "workflows", name, body),
            name,
        )
        return self.get(name)

    def retry(self, name: str, values: Mapping[str, str] | None = None) -> WorkflowInfo:
        raise WorkflowError(
            f"the kubernetes backend does not retry in place: run `argo retry {name} -n {self.namespace}`, or "
            f"`trainflow resubmit {name} --backend kubernetes` (a new run; memoized steps are reused)"
        )

    def resubmit(
        self, name: str, new_name: str | None = None, no_cache: bool = False, values: Mapping[str, str] | None = None
    ) -> WorkflowInfo:
        """Run a workflow again under a new name from its own compiled spec (cluster options and all).

        `values` override parameters; memoized steps whose inputs did not change are reused unless `no_cache`.
        """
        source = self._get_raw(name)
        meta = source.get("metadata", {})
        if meta.get("labels", {}).get("app.kubernetes.io/managed-by") != "trainflow":
            raise WorkflowError(f"'{name}' is not a trainflow workflow: resubmit it with `argo resubmit {name}`")
        spec = copy.deepcopy(source["spec"])
        spec.pop("shutdown", None)  # a stopped run's copy must run
        params = {p["name"]: str(p.get("value", "")) for p in spec.get("arguments", {}).get("parameters", [])}
        params.update(_known_overrides(name, params, values or {}))
        annotations = meta.get("annotations", {})
        name_param = annotations.get(NAME_PARAM_ANNOTATION) or None
        copy_meta: dict[str, Any] = {
            "namespace": self.namespace,
            "labels": meta.get("labels", {}),
            "annotations": annotations,
        }
        if name_param is not None and name_param in params:
            chosen = new_name or (values or {}).get(name_param)
            params[name_param] = chosen or f"{params[name_param][:50]}-{secrets.token_hex(3)}"
            copy_meta["name"] = params[name_param] + annotations.get(NAME_SUFFIX_ANNOTATION, "")
        elif new_name:
            raise WorkflowError(f"{name}'s pipeline names its runs itself: resubmit without --job-name")
        else:
            copy_meta["generateName"] = (
                meta.get("generateName") or f"{meta.get('labels', {}).get(PIPELINE_LABEL, name)}-"
            )
        pipeline = PIPELINES.get(meta.get("labels", {}).get(PIPELINE_LABEL, ""))
        if pipeline is not None:  # a built-in pipeline: its parameters are checked as at submit
            _checked(pipeline, params)
        spec["arguments"] = {"parameters": [{"name": k, "value": v} for k, v in params.items()]}
        if no_cache:
            for template in spec.get("templates", []):
                template.pop("memoize", None)
        body = {"apiVersion": source.get("apiVersion"), "kind": source.get("kind"), "metadata": copy_meta, "spec": spec}
        created = self.call(
            lambda: self.api.custom.create_namespaced_custom_object(*ARGO, self.namespace, "workflows", body),
            copy_meta.get("name"),
        )
        return workflow_info(created or body, self.name)

    def services(self) -> builtins.list[tuple[WorkflowInfo, StepInfo]]:
        """trainflow's Services in the namespace, with in-cluster addresses and the port-forward to reach them."""
        listing = self.call(lambda: self.api.core.list_namespaced_service(self.namespace, label_selector=MANAGED))
        workflows: dict[str, WorkflowInfo | None] = {}
        found = []
        for svc in items_of(listing):
            labels = field_of(svc, "metadata", "labels") or {}
            workflow, step = labels.get(WORKFLOW_LABEL), labels.get(STEP_LABEL)
            if not workflow or not step:
                continue
            if workflow not in workflows:
                workflows[workflow] = self._get_or_none(workflow)
            info = workflows[workflow]
            if info is None:  # its workflow was deleted by hand: `kubectl delete` removes what is left
                continue
            known = info.step(step) or StepInfo(step, status=SUCCEEDED, service=True)
            found.append((info, replace(known, outputs={**known.outputs, **self._addresses(svc)})))
        return found

    def _get_or_none(self, name: str) -> WorkflowInfo | None:
        try:
            return self.get(name)
        except WorkflowError:
            return None

    def _addresses(self, svc: Any) -> dict[str, str]:
        """`<port>-address` in the cluster per port, and the command that brings them to this machine."""
        name = field_of(svc, "metadata", "name")
        ports = [
            (field_of(p, "name") or str(field_of(p, "port")), field_of(p, "port"))
            for p in field_of(svc, "spec", "ports") or []
        ]
        found = {f"{port_name}-address": f"{name}.{self.namespace}.svc:{port}" for port_name, port in ports}
        forward = " ".join(str(port) for _, port in ports)
        found["port-forward"] = f"kubectl port-forward -n {self.namespace} svc/{name} {forward}"
        return found

    def progress(self, name: str, step: str) -> builtins.list[dict[str, Any]]:
        return []  # progress files stay in the pods: `trainflow logs` shows the training lines

    def forward(self, workflow: str, serves: str, local_ports: Sequence[int] = ()) -> AbstractContextManager[Reached]:
        """The service's ports forwarded to loopback ports here, through a ready pod, while the block runs."""
        return self._forwarded(workflow, serves, local_ports)

    @contextmanager
    def _forwarded(self, workflow: str, serves: str, local_ports: Sequence[int]) -> Iterator[Reached]:
        from trainflow.workflows.kubernetes.forwarding import forward_service

        with forward_service(self, workflow, serves, local_ports) as forwarded:
            yield Reached(forwarded.service, forwarded.addresses, via=f"forwarded to pod {forwarded.pod}")

    def checks(self, secret: str) -> builtins.list[Check]:
        """What workflows need of the cluster and namespace (RBAC, CRDs, the `secret`, the cache's storage)."""
        from trainflow.workflows.kubernetes.doctor import Doctor
        from trainflow.workflows.kubernetes.trainjob import DEFAULT_RUNTIME

        runtime = self.options.training_runtime or DEFAULT_RUNTIME
        return builtins.list(Doctor(self.api, self.namespace, secret, self.job_kind, runtime).checks())

    def call(self, request: Callable[[], T], name: str | None = None, pod: bool = False) -> T:
        """Run one API request about workflow (or `pod`) `name`; map the client's failures to one-line errors."""
        try:
            return request()
        except WorkflowError:
            raise
        except Exception as exc:  # noqa: BLE001 - the client raises ApiException, urllib3 and socket errors
            if pod and getattr(exc, "status", None) == 404:
                raise WorkflowError(
                    f"pod {name} is gone from namespace {self.namespace} (removed after its step ended): "
                    "its log went with it"
                ) from None
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


def _known_overrides(name: str, params: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise WorkflowError(
            f"workflow {name} has no parameter '{unknown[0]}': its parameters are {', '.join(sorted(params))}"
        )
    return dict(values)


def _checked(pipeline: Pipeline, params: Mapping[str, str]) -> None:
    try:
        pipeline.resolve(params)
    except PipelineError as exc:
        raise WorkflowError(exc.message) from None


def _node_step(pod: Any) -> str:
    """The step an Argo pod ran: its node name is `<workflow>.<step>` or `<workflow>.<step>(<attempt>)`."""
    node = (field_of(pod, "metadata", "annotations") or {}).get("workflows.argoproj.io/node-name", "")
    return node.split(".", 1)[-1].split("(", 1)[0]
