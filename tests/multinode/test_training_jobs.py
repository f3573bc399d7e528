"""The operators' other worlds, one node per pod: an elastic all-Worker PyTorchJob and a TFJob with parameter servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.multinode.conftest import MakeCluster
from tests.multinode.operator_env import TFJOB_PORT, elastic_pytorchjob_pods, tfjob_pods
from tests.multinode.world import base_env, logs, nodes_for, read_json, start_pods, trainflow, wait_all

pytestmark = pytest.mark.slow

STEPS, BATCH = 40, 100  # 3 workers x 100 examples per step: ~0.92 test accuracy with the MLP
ACCURACY_FLOOR = 0.9


def train_args(mnist_dir: Path, train_dir: Path) -> list[str]:
    return trainflow(
        "train",
        "--data-dir",
        str(mnist_dir),
        "--train-dir",
        str(train_dir),
        "--model",
        "mlp",
        "--train-steps",
        str(STEPS),
        "--batch-size",
        str(BATCH),
        "--checkpoint-every",
        str(STEPS),
        "--log-every",
        "30",
    )


def test_elastic_all_worker_pytorchjob_meets_at_worker_zero_by_c10d_rendezvous(
    make_cluster: MakeCluster, mnist_dir: Path, tmp_path: Path
) -> None:
    pods = elastic_pytorchjob_pods("myjob", min_replicas=2, max_replicas=3)
    cluster = make_cluster(nodes_for(pods))
    running = start_pods(cluster, pods, train_args(mnist_dir, tmp_path / "train"), base_env(), tmp_path)
    assert wait_all(cluster, running, timeout=180) == [0, 0, 0], logs(running)
    metrics = read_json(tmp_path / "train" / "metrics.json")
    assert (metrics["world_size"], metrics["global_step"]) == (3, STEPS)
    assert metrics["accuracy"] >= ACCURACY_FLOOR, metrics
    assert all("rendezvous c10d at myjob-worker-0:23456" in item.output() for item in running), logs(running)


def test_tfjob_workers_train_from_tf_config_names_and_parameter_servers_exit_zero_saying_why(
    make_cluster: MakeCluster, mnist_dir: Path, tmp_path: Path
) -> None:
    pods = tfjob_pods("myjob", {"worker": 3, "ps": 2})
    cluster = make_cluster(nodes_for(pods))
    running = start_pods(cluster, pods, train_args(mnist_dir, tmp_path / "train"), base_env(), tmp_path)
    assert wait_all(cluster, running, timeout=180) == [0] * 5, logs(running)
    metrics = read_json(tmp_path / "train" / "metrics.json")
    assert (metrics["world_size"], metrics["global_step"]) == (3, STEPS)
    assert metrics["accuracy"] >= ACCURACY_FLOOR, metrics
    chief, *_, ps0, ps1 = (item.output() for item in running)
    master = json.loads(pods[0].env["TF_CONFIG"])["cluster"]["worker"][0]
    assert master == f"myjob-worker-0.default.svc:{TFJOB_PORT}"
    assert f"rendezvous static at myjob-worker-0.default.svc:{TFJOB_PORT}" in running[2].output()
    assert "test accuracy" in chief
    for index, output in enumerate((ps0, ps1)):
        assert f"TF_CONFIG task ps:{index} does not train" in output and "exits successfully" in output
