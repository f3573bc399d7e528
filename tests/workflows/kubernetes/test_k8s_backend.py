"""The Kubernetes backend against a fake API object (named so in each test) and, for "no cluster", the real client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from servers import free_port

from tests.workflows.kubernetes.fake_cluster import FakeCluster
from trainflow.workflows import MODEL_DEPLOY, MODEL_TRAIN, WorkflowError
from trainflow.workflows.backend import FAILED, PENDING, RUNNING, SKIPPED, SUCCEEDED
from trainflow.workflows.kubernetes import KubernetesBackend, problems


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


def backend(cluster: FakeCluster, job_kind: str = "pytorchjob", namespace: str = "ml") -> KubernetesBackend:
    return KubernetesBackend(namespace=namespace, job_kind=job_kind, api=cluster.api())


def test_submit_creates_workflow_fake_k8s_api(cluster: FakeCluster) -> None:
    info = backend(cluster, "tfjob").submit(MODEL_TRAIN, {"job-name": "run1", "tf-worker": "2"})
    created = cluster.workflows[("ml", "run1")]
    assert created["kind"] == "Workflow" and created["metadata"]["namespace"] == "ml" and problems(created) == []
    assert created["metadata"]["labels"]["trainflow.io/job-kind"] == "tfjob"
    assert info.name == "run1" and info.status == PENDING and info.backend == "kubernetes"
    assert [s.name for s in info.steps] == [s.name for s in MODEL_TRAIN.steps]
    assert info.params["tf-worker"] == "2" and info.params["namespace"] == "ml"


def test_submitting_a_name_that_exists_says_so_fake_k8s_api(cluster: FakeCluster) -> None:
    backend(cluster).submit(MODEL_TRAIN, {"job-name": "run1"})
    with pytest.raises(WorkflowError, match="workflow run1 already exists in namespace ml"):
        backend(cluster).submit(MODEL_TRAIN, {"job-name": "run1"})


def test_bad_parameters_never_reach_the_cluster_fake_k8s_api(cluster: FakeCluster) -> None:
    with pytest.raises(WorkflowError, match="tf-worker must be at least 1"):
        backend(cluster).submit(MODEL_TRAIN, {"tf-worker": "0"})
    with pytest.raises(WorkflowError, match="differs from --namespace ml"):
        backend(cluster).submit(MODEL_TRAIN, {"namespace": "other"})
    assert cluster.workflows == {}


def node(
    name: str, phase: str, kind: str = "Pod", outputs: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "displayName": name,
        "type": kind,
        "phase": phase,
        "startedAt": "2026-01-02T03:04:05Z",
        "outputs": {"parameters": [{"name": k, "value": v} for k, v in (outputs or {}).items()]},
        **extra,
    }


def test_get_maps_argo_phases_and_step_outputs_fake_k8s_api(cluster: FakeCluster) -> None:
    backend(cluster).submit(MODEL_TRAIN, {"job-name": "run1"})
    cluster.workflows[("ml", "run1")]["status"] = {
        "phase": "Running",
        "startedAt": "2026-01-02T03:04:00Z",
        "nodes": {
            "a": node("run1", "Running", "DAG"),
            "b": node(
                "download-dataset",
                "Succeeded",
                "Retry",
                {"dataset-path": "/var/lib/trainflow/cache/datasets/mnist"},
                finishedAt="2026-01-02T03:05:05Z",
            ),
            "c": node("download-dataset(0)", "Succeeded"),
            "d": node("get-workflow-info", "Error", message="pod deleted"),
            "e": node("train-model", "Running", "Resource"),
        },
    }
    info = backend(cluster).get("run1")
    statuses = {s.name: s.status for s in info.steps}
    assert info.status == RUNNING and info.started_at is not None
    assert statuses == {
        "download-dataset": SUCCEEDED,
        "get-workflow-info": FAILED,
        "tensorboard": PENDING,
        "train-model": RUNNING,
        "export-model": PENDING,
        "serve-model": PENDING,
    }
    download = info.step("download-dataset")
    assert download.outputs == {"dataset-path": "/var/lib/trainflow/cache/datasets/mnist"}
    assert download.finished_at - download.started_at == 60
    assert info.step("get-workflow-info").message == "pod deleted"


def test_finished_workflow_without_a_model_server_shows_serve_model_skipped_fake_k8s_api(cluster: FakeCluster) -> None:
    backend(cluster).submit(MODEL_TRAIN, {"job-name": "run1", "model-serving": "false"})
    cluster.workflows[("ml", "run1")]["status"] = {
        "phase": "Succeeded",
        "nodes": {
            str(i): node(s.name, "Succeeded") for i, s in enumerate(MODEL_TRAIN.steps) if s.name != "serve-model"
        },
    }
    info = backend(cluster).get("run1")
    assert info.status == SUCCEEDED and info.step("serve-model").status == SKIPPED


def test_list_shows_trainflow_workflows_newest_first_fake_k8s_api(cluster: FakeCluster) -> None:
    for name in ("older", "newer"):
        backend(cluster).submit(MODEL_TRAIN, {"job-name": name})
    cluster.add_foreign_workflow("ml", "not-ours")
    assert [i.name for i in backend(cluster).list()] == ["newer", "older"]
    assert backend(cluster, namespace="elsewhere").list() == []


def test_logs_prefix_each_step_and_read_every_training_pod_fake_k8s_api(cluster: FakeCluster) -> None:
    backend(cluster).submit(MODEL_TRAIN, {"job-name": "run1", "tf-worker": "2"})
    cluster.add_pod(
        "ml",
        "run1-download-dataset-1",
        {"workflows.argoproj.io/workflow": "run1"},
        "main",
        "synced 4 files\n",
        node_name="run1.download-dataset(0)",
    )
    for i, replica in enumerate(("master-0", "worker-0")):
        cluster.add_pod(
            "ml",
            f"run1-{replica}",
            {"trainflow.io/workflow": "run1", "trainflow.io/step": "train-model"},
            "pytorch",
            f"node {i} of 2 (pytorchjob)\n",
        )
    lines = list(backend(cluster).logs("run1"))
    assert lines == [
        "download-dataset: synced 4 files",
        "train-model: node 0 of 2 (pytorchjob)",
        "train-model: node 1 of 2 (pytorchjob)",
    ]
    assert list(backend(cluster).logs("run1", "download-dataset")) == ["download-dataset: synced 4 files"]
    with pytest.raises(WorkflowError, match="has no step 'nope'"):
        list(backend(cluster).logs("run1", "nope"))


def test_following_logs_does_not_wait_on_a_server_that_never_ends_fake_k8s_api(cluster: FakeCluster) -> None:
    backend(cluster).submit(MODEL_TRAIN, {"job-name": "run1"})
    cluster.add_pod(
        "ml",
        "run1-export",
        {"workflows.argoproj.io/workflow": "run1"},
        "main",
        "exported version 1\n",
        node_name="run1.export-model",
    )
    cluster.add_pod(
        "ml",
        "run1-model-server-abc",
        {"trainflow.io/workflow": "run1", "trainflow.io/step": "serve-model"},
        "serve-model",
        "Serving model 'mnist' version 1\n",
    )
    assert list(backend(cluster).logs("run1", follow=True)) == [
        "export-model: exported version 1",
        "serve-model: Serving model 'mnist' version 1",
    ]
    assert cluster.log_reads == [("run1-export", True), ("run1-model-server-abc", False)]


def test_following_a_log_streams_its_lines_as_they_arrive_in_pieces_fake_k8s_api(cluster: FakeCluster) -> None:
    backend(cluster).submit(MODEL_TRAIN, {"job-name": "run1"})
    cluster.add_pod(
        "ml",
        "run1-train",
        {"trainflow.io/workflow": "run1", "trainflow.io/step": "train-model"},
        "pytorch",
        "step=10/200 loss=2.01\nstep=20/200 loss=1.52\nno newline at the end",
    )
    lines = backend(cluster).logs("run1", "train-model", follow=True)
    assert next(lines) == "train-model: step=10/200 loss=2.01"  # a line as soon as it is whole, not at the end
    assert list(lines) == ["train-model: step=20/200 loss=1.52", "train-model: no newline at the end"]
    assert [s.released for s in cluster.streams] == [True]


def params_of(workflow: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}


def test_resubmit_copies_the_run_with_overrides_and_keeps_its_cluster_options_fake_k8s_api(
    cluster: FakeCluster,
) -> None:
    target = backend(cluster)
    target.submit(MODEL_TRAIN, {"job-name": "run1", "model-learning-rate": "0.01"})
    original = cluster.workflows[("ml", "run1")]
    original["spec"]["nodeSelector"] = {"pool": "gpu"}  # as compile's --node-selector writes it
    original["spec"]["shutdown"] = "Stop"  # the first run was stopped
    info = target.resubmit("run1", "run2", values={"model-learning-rate": "0.05"})
    copy = cluster.workflows[("ml", "run2")]
    assert info.name == "run2" and params_of(copy)["job-name"] == "run2"
    assert params_of(copy)["model-learning-rate"] == "0.05" and params_of(original)["model-learning-rate"] == "0.01"
    assert copy["spec"]["nodeSelector"] == {"pool": "gpu"} and "shutdown" not in copy["spec"]
    assert any("memoize" in t for t in copy["spec"]["templates"])  # unchanged steps are reused from the cache
    fresh = target.resubmit("run1", "run3", no_cache=True)
    assert not any("memoize" in t for t in cluster.workflows[("ml", fresh.name)]["spec"]["templates"])
    auto = target.resubmit("run1")
    assert auto.name.startswith("run1-") and params_of(cluster.workflows[("ml", auto.name)])["job-name"] == auto.name


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"model-learning-rat": "0.1"}, "workflow run1 has no parameter 'model-learning-rat'"),
        ({"tf-worker": "0"}, "tf-worker must be at least 1"),
    ],
)
def test_resubmit_with_a_bad_override_creates_nothing_fake_k8s_api(
    cluster: FakeCluster, values: dict[str, str], message: str
) -> None:
    backend(cluster).submit(MODEL_TRAIN, {"job-name": "run1"})
    with pytest.raises(WorkflowError, match=message):
        backend(cluster).resubmit("run1", "run2", values=values)
    assert list(cluster.workflows) == [("ml", "run1")]


def test_a_pod_that_went_away_before_its_log_was_read_is_named_as_a_pod_fake_k8s_api(cluster: FakeCluster) -> None:
    backend(cluster).submit(MODEL_TRAIN, {"job-name": "run1"})
    cluster.add_pod(
        "ml", "run1-export", {"workflows.argoproj.io/workflow": "run1"}, "main", "", node_name="run1.export-model"
    )

    def gone(*args: Any, **kwargs: Any) -> str:
        raise ApiException(status=404, reason="Not Found")

    cluster.read_namespaced_pod_log = gone  # type: ignore[method-assign]
    with pytest.raises(WorkflowError, match="pod run1-export is gone from namespace ml") as error:
        list(backend(cluster).logs("run1", "export-model"))
    assert "workflow run1-export not found" not in str(error.value)


def test_stop_asks_argo_to_stop_a_running_workflow_fake_k8s_api(cluster: FakeCluster) -> None:
    backend(cluster).submit(MODEL_TRAIN, {"job-name": "run1"})
    cluster.workflows[("ml", "run1")]["status"] = {"phase": "Running", "nodes": {}}
    backend(cluster).stop("run1")
    assert cluster.workflows[("ml", "run1")]["spec"]["shutdown"] == "Stop"
    assert cluster.workflows[("ml", "run1")]["spec"]["templates"]  # the rest of the spec is untouched
    cluster.workflows[("ml", "run1")]["status"] = {"phase": "Failed", "nodes": {}}
    with pytest.raises(WorkflowError, match="workflow run1 is Failed, not running"):
        backend(cluster).stop("run1")


def test_wait_follows_a_cluster_workflow_to_its_end_fake_k8s_api(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainflow.cli.watch import follow

    target = backend(cluster)
    target.submit(MODEL_TRAIN, {"job-name": "run1"})
    reads = 0
    real_get = cluster.get_namespaced_custom_object

    def get_then_finish(*args: Any) -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads == 3:  # the third read finds it finished
            cluster.workflows[("ml", "run1")]["status"] = {"phase": "Succeeded", "nodes": {}}
        return real_get(*args)

    cluster.get_namespaced_custom_object = get_then_finish  # type: ignore[method-assign]
    target.poll_seconds = 0.01
    assert follow(target, "run1", live=False).status == SUCCEEDED and reads == 3
    assert "Succeeded" in capsys.readouterr().out


def test_services_lists_cluster_addresses_and_the_port_forward_to_reach_them_fake_k8s_api(
    cluster: FakeCluster,
) -> None:
    backend(cluster).submit(MODEL_TRAIN, {"job-name": "run1"})
    cluster.add_server("ml", "run1")
    cluster.add_server("ml", "deleted-by-hand")  # its workflow is gone: not listed
    [(info, step)] = backend(cluster).services()
    assert info.name == "run1" and step.name == "serve-model" and step.service
    assert step.outputs["rest-address"] == "run1-model-server.ml.svc:8501"
    assert step.outputs["grpc-address"] == "run1-model-server.ml.svc:9000"
    assert step.outputs["port-forward"] == "kubectl port-forward -n ml svc/run1-model-server 8501 9000"


def test_delete_removes_the_workflow_and_its_servers_but_keeps_the_dataset_cache_fake_k8s_api(
    cluster: FakeCluster,
) -> None:
    backend(cluster).submit(MODEL_TRAIN, {"job-name": "run1"})
    backend(cluster).submit(MODEL_TRAIN, {"job-name": "run2"})
    for name in ("run1", "run2"):
        cluster.add_server("ml", name)
    cluster.claims.add(("ml", "trainflow-cache"))
    backend(cluster).delete("run1")
    assert list(cluster.workflows) == [("ml", "run2")]
    assert sorted(cluster.deployments) == [("ml", "run2-model-server")]
    assert sorted(cluster.services) == [("ml", "run2-model-server")]
    assert cluster.claims == {("ml", "trainflow-cache")}


def test_model_deploy_serves_from_where_the_train_workflow_wrote_fake_k8s_api(cluster: FakeCluster) -> None:
    backend(cluster).submit(
        MODEL_TRAIN, {"job-name": "run1", "s3-train-base-url": "s3://models", "aws-endpoint-url": "http://minio:9000"}
    )
    info = backend(cluster).submit(MODEL_DEPLOY, {"workflow": "run1"})
    assert info.name == "run1-deploy"
    params = {
        p["name"]: p["value"] for p in cluster.workflows[("ml", "run1-deploy")]["spec"]["arguments"]["parameters"]
    }
    assert params["s3-train-base-url"] == "s3://models" and params["aws-endpoint-url"] == "http://minio:9000"


def test_a_missing_workflow_is_one_clear_line_fake_k8s_api(cluster: FakeCluster) -> None:
    for call in (
        lambda b: b.get("ghost"),
        lambda b: b.delete("ghost"),
        lambda b: b.submit(MODEL_DEPLOY, {"workflow": "ghost"}),
    ):
        with pytest.raises(
            WorkflowError, match="workflow ghost not found in namespace ml: see trainflow list --backend kubernetes"
        ):
            call(backend(cluster))


def test_cluster_errors_become_one_line_with_permanent_or_transient_exit_codes_fake_k8s_api(
    cluster: FakeCluster,
) -> None:
    cluster.fail_next = ApiException(status=403, reason="Forbidden")
    with pytest.raises(WorkflowError, match="refused the request .403 Forbidden.") as caught:
        backend(cluster).list()
    assert caught.value.exit_code < 128
    cluster.fail_next = ApiException(status=503, reason="Service Unavailable")
    with pytest.raises(WorkflowError) as caught:
        backend(cluster).list()
    assert caught.value.exit_code >= 128


def no_cluster_env(tmp_path: Path, kubeconfig: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    return {**env, "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig or tmp_path / "no-such-kubeconfig")}


def test_constructing_the_backend_does_not_contact_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in no_cluster_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    target = KubernetesBackend(namespace="ml")  # no error yet: nothing is contacted
    with pytest.raises(
        WorkflowError, match="cannot reach a Kubernetes cluster .* set KUBECONFIG or run inside a cluster"
    ):
        target.list()


@pytest.mark.parametrize(
    "command",
    [
        ["submit", "model-train"],
        ["list"],
        ["get", "run1"],
        ["tensorboard", "run1"],
        ["predict", "--workflow", "run1", "--num", "1"],
        ["ui", "--port", str(free_port())],
    ],
)
def test_kubernetes_backend_without_a_kubeconfig_exits_with_one_clear_line(tmp_path: Path, command: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", *command, "--backend", "kubernetes"],
        env=no_cluster_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach a Kubernetes cluster (") and line.endswith(
        "set KUBECONFIG or run inside a cluster"
    )


def test_unreachable_api_server_is_a_transient_one_line_error(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: k, cluster: {{server: 'http://127.0.0.1:{free_port()}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", "list", "--backend", "kubernetes"],
        env=no_cluster_env(tmp_path, kubeconfig),
        capture_output=True,
        text=True,
        timeout=120,
    )
    [line] = out.stderr.strip().splitlines()
    assert out.returncode >= 128 and line.startswith("error: cannot reach a Kubernetes cluster ("), out.stderr
