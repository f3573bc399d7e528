"""Schedules on a cluster: a compiled Workflow wrapped in an Argo CronWorkflow, and the Kubernetes backend's
schedule operations (create, list, get, delete, suspend, resume CronWorkflows through its API client).

Argo names each run `NAME-<unix time of the scheduled time>`, as the local scheduler does. The run's labels and
annotations (what `trainflow list` and `get` read) travel in `workflowMetadata`.
"""

from __future__ import annotations

import builtins
import copy
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from trainflow.pipelines import Pipeline
from trainflow.workflows.backend import Backend
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes.cluster_api import ARGO, ClusterApi
from trainflow.workflows.kubernetes.render import PIPELINE_LABEL
from trainflow.workflows.kubernetes.status import parse_time
from trainflow.workflows.schedules import (
    ScheduleInfo,
    ScheduleRequest,
    When,
    check_name,
    check_policy,
    run_name,
)

PLURAL = "cronworkflows"
MANAGED = "app.kubernetes.io/managed-by=trainflow"
HISTORY_LIMIT = 3  # finished runs Argo keeps per schedule, succeeded and failed each
T = TypeVar("T")


def cron_workflow(workflow: Mapping[str, Any], request: ScheduleRequest) -> dict[str, Any]:
    """The CronWorkflow that starts `workflow` (a compiled, checked Argo Workflow) at the times `request` gives."""
    check_name(request.name)
    check_policy(request.policy)
    meta = workflow["metadata"]
    labels, annotations = dict(meta.get("labels", {})), dict(meta.get("annotations", {}))
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {
            "name": request.name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "schedules": [request.when.text()],
            "timezone": request.when.timezone,
            "concurrencyPolicy": request.policy,
            "startingDeadlineSeconds": request.when.starting_deadline,
            "suspend": False,
            "successfulJobsHistoryLimit": HISTORY_LIMIT,
            "failedJobsHistoryLimit": HISTORY_LIMIT,
            "workflowMetadata": {"labels": labels, "annotations": annotations},
            "workflowSpec": copy.deepcopy(workflow["spec"]),
        },
    }


def schedule_info(cron: Mapping[str, Any], backend: str = "kubernetes") -> ScheduleInfo:
    """A CronWorkflow read back as a ScheduleInfo (its next run computed from its schedule)."""
    meta, spec, status = cron.get("metadata", {}), cron.get("spec", {}), cron.get("status") or {}
    expression = (spec.get("schedules") or [spec.get("schedule", "")])[0]
    when = _when(expression, spec.get("timezone") or "UTC", int(spec.get("startingDeadlineSeconds") or 0))
    created = parse_time(meta.get("creationTimestamp")) or time.time()
    last = parse_time(status.get("lastScheduledTime"))
    suspended = bool(spec.get("suspend"))
    following = None
    if not suspended and when is not None:
        following = when.next_after(max(time.time(), last or 0.0), last or created)
    arguments = spec.get("workflowSpec", {}).get("arguments", {}).get("parameters", [])
    return ScheduleInfo(
        name=meta.get("name", ""),
        pipeline=meta.get("labels", {}).get(PIPELINE_LABEL, ""),
        schedule=expression,
        timezone=spec.get("timezone") or "UTC",
        concurrency_policy=spec.get("concurrencyPolicy") or "Allow",
        suspended=suspended,
        params={p["name"]: str(p.get("value", "")) for p in arguments},
        created_at=created,
        last_run=run_name(meta.get("name", ""), last) if last else "",
        last_fired_at=last,
        next_run_at=following,
        starting_deadline=when.starting_deadline if when else 0,
        backend=backend,
    )


def _when(expression: str, timezone: str, deadline: int) -> When | None:
    """The timing of a schedule as Argo holds it (`@every 30s` or five fields); None for one we do not read."""
    if expression.startswith("@every "):
        seconds = expression.removeprefix("@every ").removesuffix("s")
        return When(every=int(seconds), timezone=timezone, starting_deadline=deadline) if seconds.isdigit() else None
    if len(expression.split()) == 5:
        return When(cron=expression, timezone=timezone, starting_deadline=deadline)
    return None


class CronSchedules(Backend):
    """The schedule operations of `KubernetesBackend`, which derives from this (through its `api` and `call`)."""

    namespace: str

    @property
    @abstractmethod
    def api(self) -> ClusterApi: ...

    @abstractmethod
    def call(self, request: Callable[[], T], name: str | None = None, pod: bool = False) -> T: ...

    def dryrun_schedule(
        self,
        request: ScheduleRequest,
        pipeline: Pipeline,
        values: Mapping[str, str],
        python_path: builtins.list[str] | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """The checked CronWorkflow `create_schedule` would create (what `trainflow compile --schedule` prints)."""
        [workflow] = self.dryrun(pipeline, values, request.no_cache, python_path)
        return [cron_workflow(workflow, request)]

    def create_schedule(
        self,
        request: ScheduleRequest,
        pipeline: Pipeline,
        values: Mapping[str, str],
        python_path: builtins.list[str] | None = None,
    ) -> ScheduleInfo:
        [cron] = self.dryrun_schedule(request, pipeline, values, python_path)
        created = self._named(
            lambda: self.api.custom.create_namespaced_custom_object(*ARGO, self.namespace, PLURAL, cron), request.name
        )
        return schedule_info(created or cron, self.name)

    def schedules(self) -> builtins.list[ScheduleInfo]:
        listing = self.call(
            lambda: self.api.custom.list_namespaced_custom_object(*ARGO, self.namespace, PLURAL, label_selector=MANAGED)
        )
        found = [schedule_info(item, self.name) for item in listing.get("items", [])]
        return sorted(found, key=lambda s: s.name)

    def schedule(self, name: str) -> ScheduleInfo:
        cron = self._named(
            lambda: self.api.custom.get_namespaced_custom_object(*ARGO, self.namespace, PLURAL, name), name
        )
        return schedule_info(cron, self.name)

    def delete_schedule(self, name: str) -> None:
        self._named(lambda: self.api.custom.delete_namespaced_custom_object(*ARGO, self.namespace, PLURAL, name), name)

    def suspend_schedule(self, name: str, suspended: bool = True) -> ScheduleInfo:
        body = {"spec": {"suspend": suspended}}
        patched = self._named(
            lambda: self.api.custom.patch_namespaced_custom_object(*ARGO, self.namespace, PLURAL, name, body), name
        )
        return schedule_info(patched, self.name)

    def _named(self, request: Callable[[], T], name: str) -> T:
        """One API request about schedule `name`: a missing or existing one is said as a schedule, not a workflow."""

        def run() -> T:
            try:
                return request()
            except Exception as exc:
                status = getattr(exc, "status", None)
                if status == 404:
                    raise WorkflowError(
                        f"no schedule named '{name}' in namespace {self.namespace}: see "
                        f"`trainflow schedule list {self.flags}`"
                    ) from None
                if status == 409:
                    raise WorkflowError(
                        f"a schedule named '{name}' already exists in namespace {self.namespace}: "
                        f"`trainflow schedule delete {name} {self.flags}` removes it, or pick another name"
                    ) from None
                raise

        return self.call(run)
