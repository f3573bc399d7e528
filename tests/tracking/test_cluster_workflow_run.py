"""A compiled workflow's pods nest their step runs under one workflow run, without a cluster: the pods' own
`trainflow step ...` commands run here, several at once, with the environment a pod gets (the Secret's URI, the
workflow's uid, name and pipeline), against the real `mlflow server` fixture; the exit handler's command ends it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.tracking.conftest import MlflowServer, run_trainflow
from trainflow.tracking.cluster_run import PARAMS_ENV, PIPELINE_ENV, UID_TAG, WORKFLOW_NAME_ENV, WORKFLOW_UID_ENV

PODS = 6


def _pod_env(server: MlflowServer, tmp_path: Path, uid: str, pipeline: str) -> dict[str, str]:
    (tmp_path / "pod_steps.py").write_text("def noop() -> dict:\n    return {}\n")
    return {
        "MLFLOW_TRACKING_URI": server.uri,
        WORKFLOW_UID_ENV: uid,
        WORKFLOW_NAME_ENV: "nightly-x7k2p",
        PIPELINE_ENV: pipeline,
        "MLFLOW_EXPERIMENT_NAME": "",
        "PYTHONPATH": str(tmp_path),
    }


def _runs(server: MlflowServer, experiment: str) -> list[Any]:
    client = server.client()
    return list(client.search_runs([client.get_experiment_by_name(experiment).experiment_id]))


def test_pods_started_at_once_nest_under_one_workflow_run_without_a_cluster(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    uid = str(uuid.uuid4())
    env = {**os.environ, "TRAINFLOW_HOME": str(tmp_path / "home"), **_pod_env(mlflow_server, tmp_path, uid, "pods")}
    pods = [
        subprocess.Popen(
            [sys.executable, "-m", "trainflow", "step", "call", "pod_steps:noop"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(PODS)
    ]
    for pod in pods:
        out, _ = pod.communicate(timeout=300)
        assert pod.returncode == 0, out
        assert "WARNING" not in out, out  # every pod found (or made) the workflow's run
    runs = _runs(mlflow_server, "pods")  # the experiment is the pipeline's, as locally
    # Pods that raced may each have kept their own run (one stored after the other searched); every step ends nested
    # under the oldest, the one the exit handler keeps when it settles the workflow.
    tagged = [r for r in runs if r.data.tags.get(UID_TAG) == uid]
    workflow = min(tagged, key=lambda r: (r.info.start_time, r.info.run_id))
    assert workflow.info.run_name == "nightly-x7k2p" and workflow.info.status == "RUNNING"
    assert workflow.data.tags["trainflow.backend"] == "kubernetes"
    steps = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == workflow.info.run_id]
    assert len(steps) == PODS and {r.info.status for r in steps} == {"FINISHED"}
    assert {r.data.tags["trainflow.workflow"] for r in steps} == {"nightly-x7k2p"}

    params = json.dumps([{"name": "epochs", "value": "3"}, {"name": "mlflow-secret", "value": "team-mlflow"}])
    ended = run_trainflow(
        tmp_path / "home", {**env, PARAMS_ENV: params}, "step", "mlflow-end-run", "--status", "Failed"
    )
    assert ended.returncode == 0, ended.stdout + ended.stderr
    kept = workflow.info.run_id
    (workflow,) = [r for r in _runs(mlflow_server, "pods") if r.data.tags.get(UID_TAG) == uid]  # settled: one
    assert workflow.info.run_id == kept
    assert workflow.info.status == "FAILED" and workflow.info.end_time
    assert workflow.data.params == {"epochs": "3", "mlflow-secret": "team-mlflow"}


def test_the_exit_handler_ends_a_succeeded_workflow_finished_and_another_workflow_gets_its_own_run(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for uid in (first, second):
        env = _pod_env(mlflow_server, tmp_path, uid, "pods-ended")
        done = run_trainflow(tmp_path / "home", env, "step", "call", "pod_steps:noop")
        assert done.returncode == 0, done.stdout + done.stderr
    env = _pod_env(mlflow_server, tmp_path, first, "pods-ended")
    ended = run_trainflow(tmp_path / "home", env, "step", "mlflow-end-run", "--status", "Succeeded")
    assert ended.returncode == 0, ended.stdout + ended.stderr
    runs = _runs(mlflow_server, "pods-ended")
    status = {r.data.tags[UID_TAG]: r.info.status for r in runs if UID_TAG in r.data.tags}
    assert status == {first: "FINISHED", second: "RUNNING"}


def test_a_pod_with_a_uid_that_is_not_one_tracks_its_step_alone(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    env = {
        **_pod_env(mlflow_server, tmp_path, "x' or tags.a = 'b", "pods-bad-uid"),
        "MLFLOW_EXPERIMENT_NAME": "bad-uid",
    }
    done = run_trainflow(tmp_path / "home", env, "step", "call", "pod_steps:noop")
    assert done.returncode == 0, done.stdout + done.stderr
    (alone,) = _runs(mlflow_server, "bad-uid")
    assert "mlflow.parentRunId" not in alone.data.tags and alone.info.status == "FINISHED"


def test_submitting_to_a_cluster_opens_no_run_here_its_pods_do_fake_k8s_api(
    mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.workflows.kubernetes.fake_cluster import FakeCluster
    from trainflow.workflows import MODEL_TRAIN
    from trainflow.workflows.kubernetes.backend import KubernetesBackend

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "cluster-submit")
    cluster = FakeCluster()
    KubernetesBackend(namespace="ml", api=cluster.api()).submit(
        MODEL_TRAIN, {"job-name": "run3", "mlflow-secret": "team-mlflow"}
    )
    assert ("ml", "run3") in cluster.workflows
    assert mlflow_server.client().get_experiment_by_name("cluster-submit") is None  # no run left RUNNING forever


def _workflow_run(server: MlflowServer, experiment: str, uid: str, start_time: int) -> str:
    """A workflow run as a pod creates it, started at `start_time` (the creating client's clock, in ms)."""
    client = server.client()
    tags = {UID_TAG: uid, "trainflow.workflow": "nightly-x7k2p", "trainflow.backend": "kubernetes"}
    return str(client.create_run(experiment, start_time=start_time, tags=tags).info.run_id)


def _step_of(server: MlflowServer, experiment: str, parent: str) -> str:
    return str(server.client().create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id)


def test_the_exit_handler_moves_the_steps_of_runs_that_lost_a_race_under_the_oldest_and_deletes_them(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    client, uid = mlflow_server.client(), str(uuid.uuid4())
    experiment = client.create_experiment("pods-raced")
    oldest = _workflow_run(mlflow_server, experiment, uid, 1_000)
    later = _workflow_run(mlflow_server, experiment, uid, 2_000)  # a pod searched before `oldest` was stored
    deleted = _workflow_run(mlflow_server, experiment, uid, 500)
    client.delete_run(deleted)  # its creator saw it lose, but a pod had already nested its step under it
    steps = [_step_of(mlflow_server, experiment, run) for run in (oldest, later, deleted)]

    env = _pod_env(mlflow_server, tmp_path, uid, "pods-raced")
    ended = run_trainflow(tmp_path / "home", env, "step", "mlflow-end-run", "--status", "Succeeded")
    assert ended.returncode == 0, ended.stdout + ended.stderr
    runs = _runs(mlflow_server, "pods-raced")
    assert [r.info.run_id for r in runs if r.data.tags.get(UID_TAG) == uid] == [oldest]  # the later one deleted
    assert client.get_run(oldest).info.status == "FINISHED"
    assert {client.get_run(s).data.tags["mlflow.parentRunId"] for s in steps} == {oldest}


@pytest.mark.timeout(900)  # two trainflow processes' start and a dozen MLflow calls, under load
def test_a_step_that_nested_under_a_run_which_then_lost_nests_under_the_oldest_when_it_ends(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    client, uid = mlflow_server.client(), str(uuid.uuid4())
    experiment = client.create_experiment("pods-renest")
    found = _workflow_run(mlflow_server, experiment, uid, 2_000)
    go = tmp_path / "go"
    env = {
        **os.environ,
        "TRAINFLOW_HOME": str(tmp_path / "home"),
        **_pod_env(mlflow_server, tmp_path, uid, "pods-renest"),
        "GO_FILE": str(go),
    }
    (tmp_path / "pod_steps.py").write_text(
        "import os, pathlib, time\n\n"
        "def wait() -> dict:\n"
        "    while not pathlib.Path(os.environ['GO_FILE']).exists():\n"
        "        time.sleep(0.05)\n"
        "    return {}\n"
    )
    pod = subprocess.Popen(
        [sys.executable, "-m", "trainflow", "step", "call", "pod_steps:wait"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 280  # the pod's start and its first MLflow calls, on a loaded machine
        while time.monotonic() < deadline:  # until the pod's step run is open, nested under the one run it found
            steps = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{found}'")
            if steps or pod.poll() is not None:
                break
            time.sleep(0.1)
        assert len(steps) == 1, pod.communicate()[0] if pod.poll() is not None else "no step run"
        winner = _workflow_run(mlflow_server, experiment, uid, 1_000)  # another pod's, stored late, started first
        go.touch()
        out, _ = pod.communicate(timeout=300)
    finally:
        if pod.poll() is None:
            pod.kill()
            pod.wait()
    assert pod.returncode == 0, out
    assert client.get_run(steps[0].info.run_id).data.tags["mlflow.parentRunId"] == winner
