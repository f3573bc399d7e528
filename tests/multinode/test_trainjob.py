"""A compiled TrainJob's pods meet, one node per pod, from what Trainer v2's torch runtime sets (PET_MASTER_ADDR ...)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.multinode.conftest import MakeCluster
from tests.multinode.test_training_jobs import ACCURACY_FLOOR, STEPS, train_args
from tests.multinode.trainer_env import TRAINER_PORT, jobset_names, trainjob_pods
from tests.multinode.world import base_env, logs, read_json, start_pods, wait_all
from tests.workflows.kubernetes.test_k8s_submit_params import argo_submit, manifests
from trainflow.workflows import MODEL_TRAIN
from trainflow.workflows.kubernetes import compile_pipeline, to_yaml

pytestmark = pytest.mark.slow


def test_a_compiled_trainjobs_three_nodes_meet_at_node_zero_and_train(
    make_cluster: MakeCluster, mnist_dir: Path, tmp_path: Path
) -> None:
    text = to_yaml(compile_pipeline(MODEL_TRAIN, {}, "trainjob"))
    workflow = argo_submit(text, {"tf-worker": "3", "job-name": "myjob"}, name="myjob")
    [job] = [m for m in manifests(workflow) if m["kind"] == "TrainJob"]
    pods = trainjob_pods(job)
    assert [p.name for p in pods] == ["myjob-node-0-0", "myjob-node-0-1", "myjob-node-0-2"]
    cluster = make_cluster({p.name: jobset_names("myjob", p.name) for p in pods})
    running = start_pods(cluster, pods, train_args(mnist_dir, tmp_path / "train"), base_env(), tmp_path)
    assert wait_all(cluster, running, timeout=180) == [0, 0, 0], logs(running)
    metrics = read_json(tmp_path / "train" / "metrics.json")
    assert (metrics["world_size"], metrics["global_step"]) == (3, STEPS)
    assert metrics["accuracy"] >= ACCURACY_FLOOR, metrics
    master = f"myjob-node-0-0.myjob:{TRAINER_PORT}"
    assert all(f"rendezvous static at {master}" in item.output() for item in running), logs(running)
    assert yaml.safe_dump(job).count("PET_") == 0  # the runtime sets them, the TrainJob may not
