"""Training pods from the image on network-namespace nodes: each pod a container on its own node's network."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.image.conftest import MakePod
from tests.image.runtime import Running
from tests.multinode.conftest import MakeCluster
from tests.multinode.operator_env import elastic_pytorchjob_pods
from tests.multinode.world import nodes_for

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1800)]

STEPS, BATCH = 40, 100


def test_an_elastic_pytorchjob_trains_from_the_image_with_one_pod_per_node(
    make_pod: MakePod, make_cluster: MakeCluster, mnist_dir: Path, tmp_path: Path
) -> None:
    pods = elastic_pytorchjob_pods("myjob", min_replicas=2, max_replicas=2)
    cluster = make_cluster(nodes_for(pods))
    # Every node's names resolve as the cluster's DNS resolves the pods' Services.
    hosts = {name: node.address for node in cluster.nodes.values() for name in node.names}
    volumes = {"/data": mnist_dir, "/shared": tmp_path / "shared"}  # the dataset and a shared train dir
    command = ["trainflow", "train", "--data-dir", "/data", "--train-dir", "/shared/train", "--model", "mlp"]
    command += ["--train-steps", str(STEPS), "--batch-size", str(BATCH), "--checkpoint-every", str(STEPS)]
    started: list[Running] = []
    try:
        for pod in pods:
            node = cluster.node(pod.name)
            container = make_pod(pod.name, volumes, hosts=hosts, netns=node.namespace)
            env = {**pod.env, "OMP_NUM_THREADS": "1"}
            started.append(container.start(command, env, tmp_path / f"{pod.name}.log"))
        deadline = time.monotonic() + 300
        for running in started:
            try:
                running.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    finally:
        for running in started:
            running.stop()
    outputs = "\n".join(f"--- {pod.name}\n{r.output()[-3000:]}" for pod, r in zip(pods, started))
    assert [r.proc.returncode for r in started] == [0, 0], outputs
    metrics = json.loads((tmp_path / "shared" / "train" / "metrics.json").read_text())
    assert (metrics["world_size"], metrics["global_step"]) == (2, STEPS)
    assert metrics["accuracy"] >= 0.85, metrics
    assert all("rendezvous c10d at myjob-worker-0:23456" in r.output() for r in started), outputs
