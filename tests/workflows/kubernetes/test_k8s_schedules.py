"""Schedules on a cluster: the CronWorkflow `compile --schedule` prints is schema-valid and runs the compiled
Workflow; the schedule verbs go through the backend's API client (against a mocked API server only)."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kubernetes.client.exceptions import ApiException

from tests.workflows.kubernetes.fake_cluster import FakeCluster
from trainflow.cli import schedules as verbs
from trainflow.pipelines.builtin import MODEL_TRAIN
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes.backend import ClusterApi, KubernetesBackend
from trainflow.workflows.kubernetes.cron import PLURAL
from trainflow.workflows.schedules import ScheduleRequest, When

REPO = Path(__file__).resolve().parents[3]


def compile_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainflow", "compile", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_compile_schedule_prints_a_schema_valid_cron_workflow_of_the_compiled_workflow(
    job_kind: str, validate: Callable[..., list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "cron.yaml"
    made = compile_cli(
        "model-train", "--job-kind", job_kind, "-p", "job-name=nightly", "--schedule", "0 3 * * *",
        "--timezone", "Europe/Paris", "--concurrency-policy", "Forbid", "-o", str(out),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    [cron] = list(yaml.safe_load_all(out.read_text()))
    assert validate(cron, "CronWorkflow") == []
    plain = compile_cli("model-train", "--job-kind", job_kind, "-p", "job-name=nightly")
    [workflow] = list(yaml.safe_load_all(plain.stdout))
    assert cron["spec"]["workflowSpec"] == workflow["spec"]
    assert validate({**workflow, "spec": cron["spec"]["workflowSpec"]}, "Workflow") == []
    assert cron["metadata"]["name"] == "nightly"
    assert cron["spec"]["schedules"] == ["0 3 * * *"]
    assert cron["spec"]["timezone"] == "Europe/Paris"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["startingDeadlineSeconds"] == 3600
    # the runs carry what `trainflow list` and `get` read of a trainflow workflow
    assert cron["spec"]["workflowMetadata"]["labels"] == workflow["metadata"]["labels"]
    assert cron["spec"]["workflowMetadata"]["annotations"] == workflow["metadata"]["annotations"]


def test_compile_every_of_a_user_pipeline_is_schema_valid(validate: Callable[..., list[str]]) -> None:
    made = compile_cli(str(REPO / "examples" / "own-model" / "pipeline.yaml"), "--every", "30m")
    assert made.returncode == 0, made.stderr
    [cron] = list(yaml.safe_load_all(made.stdout))
    assert validate(cron, "CronWorkflow") == []
    assert cron["spec"]["schedules"] == ["@every 1800s"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--schedule", "0 3 * *"], "bad cron expression"),
        (["--every", "soon"], "bad interval"),
        (["--schedule", "0 3 * * *", "--every", "5m"], "give exactly one of"),
        (["--schedule", "0 3 * * *", "--schedule-name", "Nightly"], "schedule name 'Nightly'"),
    ],
)
def test_compile_schedule_bad_input_is_one_line(args: list[str], says: str) -> None:
    out = compile_cli("model-train", *args)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
    assert says in out.stderr, out.stderr


class MockedCronApi:
    """A mocked Kubernetes API server's CronWorkflow endpoints (CustomObjectsApi's calls), by namespace and name."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        assert (group, version, plural) == ("argoproj.io", "v1alpha1", PLURAL)
        key = (namespace, body["metadata"]["name"])
        self.calls.append(("create", key[1]))
        if key in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        created = copy.deepcopy(body)
        created["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
        self.objects[key] = created
        return copy.deepcopy(created)

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> Any:
        self.calls.append(("get", name))
        if (namespace, name) not in self.objects:
            raise ApiException(status=404, reason="NotFound")
        return copy.deepcopy(self.objects[(namespace, name)])

    def list_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, label_selector: str = ""
    ) -> dict[str, Any]:
        assert plural == PLURAL and label_selector == "app.kubernetes.io/managed-by=trainflow"
        return {"items": [copy.deepcopy(o) for (ns, _), o in self.objects.items() if ns == namespace]}

    def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls.append(("patch", name))
        if (namespace, name) not in self.objects:
            raise ApiException(status=404, reason="NotFound")
        self.objects[(namespace, name)]["spec"].update(body["spec"])
        return copy.deepcopy(self.objects[(namespace, name)])

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str) -> Any:
        self.calls.append(("delete", name))
        if self.objects.pop((namespace, name), None) is None:
            raise ApiException(status=404, reason="NotFound")
        return {}


def test_schedule_verbs_against_a_mocked_api_server() -> None:
    api = MockedCronApi()
    backend = KubernetesBackend("team", api=ClusterApi(custom=api, core=None, apps=None))
    request = ScheduleRequest("nightly", When(cron="0 3 * * *"), "Replace")
    info = backend.create_schedule(request, MODEL_TRAIN, {"job-name": "nightly"})
    assert (info.name, info.pipeline, info.schedule, info.concurrency_policy) == (
        "nightly",
        "model-train",
        "0 3 * * *",
        "Replace",
    )
    assert info.params["job-name"] == "nightly" and info.backend == "kubernetes"
    assert info.next_run_at is not None and not info.suspended
    stored = api.objects[("team", "nightly")]
    assert stored["kind"] == "CronWorkflow" and stored["metadata"]["namespace"] == "team"

    api.objects[("team", "nightly")]["status"] = {"lastScheduledTime": "2026-01-02T03:00:00Z"}
    [listed] = backend.schedules()
    assert listed.last_run == "nightly-1767322800" and listed.last_fired_at == 1767322800.0
    assert listed.next_run_at is not None and listed.next_run_at > listed.last_fired_at

    assert backend.suspend_schedule("nightly").suspended is True
    assert api.objects[("team", "nightly")]["spec"]["suspend"] is True
    assert backend.schedule("nightly").next_run_at is None
    assert backend.suspend_schedule("nightly", False).suspended is False

    with pytest.raises(WorkflowError, match="a schedule named 'nightly' already exists in namespace team"):
        backend.create_schedule(request, MODEL_TRAIN, {"job-name": "nightly"})
    backend.delete_schedule("nightly")
    assert backend.schedules() == []
    with pytest.raises(WorkflowError, match="no schedule named 'nightly' in namespace team"):
        backend.schedule("nightly")


def test_wait_and_watch_read_runs_from_a_mocked_api_server(monkeypatch: pytest.MonkeyPatch) -> None:

    cluster = FakeCluster()
    backend = KubernetesBackend("default", api=cluster.api())
    monkeypatch.setattr(verbs, "backend_for", lambda *args: backend)
    for name, phase in (("good", "Succeeded"), ("bad", "Failed")):
        backend.submit(MODEL_TRAIN, {"job-name": name})
        cluster.workflows[("default", name)]["status"] = {"phase": phase, "message": "step train-model failed"}
    runner = CliRunner()
    assert runner.invoke(verbs.wait, ["good", "--backend", "kubernetes"]).exit_code == 0
    both = runner.invoke(verbs.wait, ["good", "bad", "--backend", "kubernetes"])
    assert both.exit_code == 1 and "not Succeeded: bad (Failed)" in both.output
    assert runner.invoke(verbs.watch, ["good", "--backend", "kubernetes"]).exit_code == 0
    assert runner.invoke(verbs.watch, ["bad", "--backend", "kubernetes"]).exit_code == 1
