"""An in-memory stand-in for the three kubernetes client APIs the backend calls: a fake, and named so in tests."""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from trainflow.workflows.kubernetes.backend import ClusterApi

Key = tuple[str, str]  # (namespace, name)


def matches(labels: dict[str, str], selector: str | None) -> bool:
    wanted = dict(part.split("=", 1) for part in (selector or "").split(",") if part)
    return all(labels.get(k) == v for k, v in wanted.items())


class FakeCluster:
    """Workflows, pods, Deployments, Services and claims by (namespace, name); raises the client's ApiException."""

    def __init__(self) -> None:
        self.workflows: dict[Key, dict[str, Any]] = {}
        self.pods: dict[Key, dict[str, Any]] = {}
        self.deployments: dict[Key, dict[str, Any]] = {}
        self.services: dict[Key, dict[str, Any]] = {}
        self.claims: set[Key] = set()
        self.fail_next: ApiException | None = None
        self.log_reads: list[tuple[str, bool]] = []  # (pod, follow)
        self.streams: list[_LogStream] = []
        self._clock = itertools.count()

    def api(self) -> ClusterApi:
        return ClusterApi(custom=self, core=self, apps=self)

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    # CustomObjectsApi
    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self._maybe_fail()
        key = (namespace, body["metadata"]["name"])
        if key in self.workflows:
            raise ApiException(status=409, reason="AlreadyExists")
        created = copy.deepcopy(body)
        stamp = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=next(self._clock))
        created["metadata"]["creationTimestamp"] = stamp.isoformat().replace("+00:00", "Z")
        self.workflows[key] = created
        return copy.deepcopy(created)

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        self._maybe_fail()
        if (namespace, name) not in self.workflows:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.workflows[(namespace, name)])

    def list_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, label_selector: str | None = None
    ) -> dict[str, Any]:
        self._maybe_fail()
        return {
            "items": [
                copy.deepcopy(w)
                for (ns, _), w in self.workflows.items()
                if ns == namespace and matches(w["metadata"].get("labels", {}), label_selector)
            ]
        }

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> None:
        self._maybe_fail()
        if self.workflows.pop((namespace, name), None) is None:
            raise ApiException(status=404, reason="Not Found")

    def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self._maybe_fail()
        if (namespace, name) not in self.workflows:
            raise ApiException(status=404, reason="Not Found")
        workflow = self.workflows[(namespace, name)]
        for section, fields in body.items():  # a JSON merge patch, one level deep: what the backend sends
            workflow.setdefault(section, {}).update(fields)
        return copy.deepcopy(workflow)

    def add_foreign_workflow(self, namespace: str, name: str) -> None:
        self.workflows[(namespace, name)] = {"metadata": {"name": name, "labels": {}}, "spec": {}}

    # CoreV1Api
    def add_pod(
        self, namespace: str, name: str, labels: dict[str, str], container: str, log: str, node_name: str | None = None
    ) -> None:
        annotations = {"workflows.argoproj.io/node-name": node_name} if node_name else {}
        self.pods[(namespace, name)] = {
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "spec": {"containers": [{"name": container}]},
            "log": log,
        }

    def list_namespaced_pod(self, namespace: str, label_selector: str | None = None) -> dict[str, Any]:
        return {
            "items": [
                p
                for (ns, _), p in self.pods.items()
                if ns == namespace and matches(p["metadata"]["labels"], label_selector)
            ]
        }

    def read_namespaced_pod_log(
        self, name: str, namespace: str, container: str, follow: bool = False, _preload_content: bool = True
    ) -> Any:
        pod = self.pods[(namespace, name)]
        self.log_reads.append((name, follow))
        assert container in [c["name"] for c in pod["spec"]["containers"]]
        if _preload_content:
            return pod["log"]
        self.streams.append(_LogStream(pod["log"].encode()))
        return self.streams[-1]

    def add_server(self, namespace: str, workflow: str) -> None:
        ports = {"rest": 8501, "grpc": 9000}
        self.add_service(namespace, workflow, "serve-model", "model", ports, f"{workflow}-model-server")

    def add_service(
        self, namespace: str, workflow: str, step: str, serves: str, ports: dict[str, int], name: str
    ) -> None:
        """A service step as compiled: a Deployment and a Service selecting its pods, labelled with what it serves."""
        selector = {"trainflow.io/workflow": workflow, "trainflow.io/step": step}
        labels = {**selector, "app.kubernetes.io/managed-by": "trainflow", "trainflow.io/serves": serves}
        container = {"name": step, "command": ["server"], "args": []}
        self.deployments[(namespace, name)] = {
            "metadata": {"name": name, "labels": labels},
            "spec": {"template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
        }
        self.services[(namespace, name)] = {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "selector": selector,
                "ports": [{"name": n, "port": p, "targetPort": n} for n, p in ports.items()],
            },
        }

    def add_service_pod(
        self, namespace: str, name: str, workflow: str, step: str, ports: dict[str, int], ready: bool = True
    ) -> None:
        """A pod of a service step: Running, and Ready unless `ready` is False."""
        labels = {"trainflow.io/workflow": workflow, "trainflow.io/step": step}
        self.pods[(namespace, name)] = {
            "metadata": {"name": name, "labels": labels, "annotations": {}},
            "spec": {
                "containers": [{"name": step, "ports": [{"name": n, "containerPort": p} for n, p in ports.items()]}]
            },
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]},
            "log": "",
        }

    def list_namespaced_service(self, namespace: str, label_selector: str | None = None) -> dict[str, Any]:
        return {
            "items": [
                s
                for (ns, _), s in self.services.items()
                if ns == namespace and matches(s["metadata"]["labels"], label_selector)
            ]
        }

    def delete_namespaced_service(self, name: str, namespace: str) -> None:
        del self.services[(namespace, name)]

    # AppsV1Api
    def list_namespaced_deployment(self, namespace: str, label_selector: str | None = None) -> dict[str, Any]:
        return {
            "items": [
                d
                for (ns, _), d in self.deployments.items()
                if ns == namespace and matches(d["metadata"]["labels"], label_selector)
            ]
        }

    def delete_namespaced_deployment(self, name: str, namespace: str) -> None:
        del self.deployments[(namespace, name)]


class _LogStream:
    """What the client returns for `_preload_content=False`: the body in chunks that split lines anywhere."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.released = False

    def stream(self, amt: int) -> Any:
        for i in range(0, len(self.data), 7):  # 7-byte chunks: lines arrive in pieces, as over a network
            yield self.data[i : i + 7]

    def release_conn(self) -> None:
        self.released = True
