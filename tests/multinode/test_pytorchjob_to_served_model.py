"""A PyTorchJob on three nodes trains into an object store on a fourth; a fifth serves the export to a sixth.

Every pod is a node of its own, reached only by the names the operator and the Services give it,
with the ports a cluster uses: 23456 on every training pod, 9000 for the object store (the
example's minio-service.kubeflow:9000), 8501 and 9000 on the model server.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from servers import AWS_TEST_ENV

from tests.multinode.conftest import MakeCluster
from tests.multinode.netns import Cluster
from tests.multinode.operator_env import PYTORCHJOB_PORT, pytorchjob_pods, service_names
from tests.multinode.world import (
    Running,
    base_env,
    logs,
    nodes_for,
    python_on,
    start_pods,
    trainflow,
    wait_all,
    wait_listening,
)

pytestmark = pytest.mark.slow

JOB = "myjob"
STORE, STORE_SERVICE, STORE_PORT = "minio-0", "minio-service", 9000
STORE_URL = f"http://{STORE_SERVICE}.kubeflow:{STORE_PORT}"
BUCKET = "mnist"
TRAIN_DIR, EXPORT_BASE = f"s3://{BUCKET}/unfinished/{JOB}", f"s3://{BUCKET}/exported/{JOB}"
SERVER, SERVER_SERVICE = "model-server-0", f"{JOB}-model-server"
CLIENT = "client-0"
STEPS, BATCH = 40, 100  # 3 workers x 100 examples per step: ~0.92 test accuracy with the MLP
ACCURACY_FLOOR = 0.9

STORE_CONTENTS = f"""
import json, boto3, botocore.config
s3 = boto3.client("s3", config=botocore.config.Config(s3={{"addressing_style": "path"}}))
keys = [o["Key"] for o in s3.list_objects_v2(Bucket={BUCKET!r})["Contents"]]
metrics = json.loads(s3.get_object(Bucket={BUCKET!r}, Key="unfinished/{JOB}/metrics.json")["Body"].read())
print(json.dumps({{"keys": keys, "metrics": metrics}}))
"""

CREATE_BUCKET = f"""
import boto3, botocore.config
boto3.client("s3", config=botocore.config.Config(s3={{"addressing_style": "path"}})).create_bucket(Bucket={BUCKET!r})
"""


@dataclass
class Deployment:
    cluster: Cluster
    training: list[Running]
    codes: list[int | None]
    store: dict[str, Any]
    env: dict[str, str]
    mnist_dir: Path


def start_store(cluster: Cluster, env: dict[str, str], log_dir: Path, node: str = f"{JOB}-master-0") -> None:
    """moto's S3 server on its own node, listening on the node's interface; the bucket made from `node`."""
    # Path-style only, as minio: moto would otherwise read the service's first label as a bucket name.
    cluster.popen(
        STORE,
        [sys.executable, "-m", "moto.server", "-H", "0.0.0.0", "-p", str(STORE_PORT)],
        {**env, "S3_IGNORE_SUBDOMAIN_BUCKETNAME": "1"},
        log_dir / "store.log",
    )
    wait_listening(cluster, node, f"{STORE_SERVICE}.kubeflow", STORE_PORT, env)
    python_on(cluster, node, CREATE_BUCKET, env)


@pytest.fixture(scope="module")
def deployment(
    make_module_cluster: MakeCluster, mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    log_dir = tmp_path_factory.mktemp("pytorchjob-to-served-model")
    pods = pytorchjob_pods(JOB, workers=2)
    cluster = make_module_cluster(
        {
            **nodes_for(pods),
            STORE: service_names(STORE_SERVICE, "kubeflow"),
            SERVER: service_names(SERVER_SERVICE),
            CLIENT: (),
        }
    )
    env = base_env(**AWS_TEST_ENV, AWS_ENDPOINT_URL=STORE_URL, TRAINFLOW_HOME=str(log_dir / "home"))
    start_store(cluster, env, log_dir)
    training = start_pods(
        cluster,
        pods,
        trainflow(
            "train",
            "--data-dir",
            str(mnist_dir),
            "--train-dir",
            TRAIN_DIR,
            "--model",
            "mlp",
            "--train-steps",
            str(STEPS),
            "--batch-size",
            str(BATCH),
            "--checkpoint-every",
            "20",
            "--log-every",
            "20",
        ),
        env,
        log_dir,
    )
    codes = wait_all(cluster, training, timeout=180)
    assert codes == [0, 0, 0], logs(training)
    store = json.loads(python_on(cluster, CLIENT, STORE_CONTENTS, env))
    yield Deployment(cluster, training, codes, store, env, mnist_dir)


def test_master_and_two_workers_on_one_port_train_mnist_by_the_masters_name(deployment: Deployment) -> None:
    metrics = deployment.store["metrics"]
    assert (metrics["world_size"], metrics["global_step"]) == (3, STEPS)
    assert metrics["accuracy"] >= ACCURACY_FLOOR, metrics
    outputs = [item.output() for item in deployment.training]
    assert f"rendezvous static at {JOB}-master-0:{PYTORCHJOB_PORT}" in outputs[1]
    assert "node 2 of 3 (pytorchjob)" in outputs[2]
    assert f"test accuracy {metrics['accuracy']:.4f}" in outputs[0]
    assert "Unable to resolve hostname" not in "".join(outputs)  # gloo bound the pod's address, not loopback


def test_checkpoints_and_events_are_written_to_the_object_store_on_its_node(deployment: Deployment) -> None:
    keys = deployment.store["keys"]
    assert {
        f"unfinished/{JOB}/checkpoints/ckpt-000000020.pt",
        f"unfinished/{JOB}/checkpoints/ckpt-000000040.pt",
        f"unfinished/{JOB}/metrics.json",
    } <= set(keys)
    assert any(k.startswith(f"unfinished/{JOB}/logs/events.out.tfevents.") for k in keys)


@pytest.fixture(scope="module")
def served(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """The export step from the master's node, then the model server on its node reading the store by name."""
    cluster, env = deployment.cluster, deployment.env
    exported = cluster.run(
        f"{JOB}-master-0",
        trainflow("step", "export-model", "--train-dir", TRAIN_DIR, "--export-base", EXPORT_BASE),
        env,
    )
    assert exported.returncode == 0, exported.stderr
    log = tmp_path_factory.mktemp("model-server") / "server.log"
    # The Deployment's container command as `trainflow compile` renders it: all interfaces, the usual ports.
    cluster.popen(
        SERVER,
        trainflow(
            "step",
            "serve-model",
            "--export-base",
            EXPORT_BASE,
            "--host",
            "0.0.0.0",
            "--rest-port",
            "8501",
            "--grpc-port",
            "9000",
        ),
        env,
        log,
    )
    for port in (8501, 9000):
        wait_listening(cluster, CLIENT, SERVER_SERVICE, port, env, timeout=90)
    return deployment


def test_the_export_is_a_numbered_version_in_the_object_store(served: Deployment) -> None:
    keys = json.loads(python_on(served.cluster, CLIENT, STORE_CONTENTS, served.env))["keys"]
    assert {f"exported/{JOB}/1/model.onnx", f"exported/{JOB}/1/signature.json"} <= set(keys)


@pytest.mark.parametrize(("protocol", "port"), [("grpc", 9000), ("rest", 8501), ("v2-rest", 8501), ("v2-grpc", 9000)])
def test_predict_from_another_node_by_service_name(served: Deployment, protocol: str, port: int) -> None:
    done = served.cluster.run(
        CLIENT,
        trainflow(
            "predict",
            "--server",
            f"{SERVER_SERVICE}.default.svc:{port}",
            "--protocol",
            protocol,
            "--data-dir",
            str(served.mnist_dir),
            "--num-tests",
            "200",
            "--concurrency",
            "4",
        ),
        served.env,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rate = re.search(r"Inference error rate: ([\d.]+)%", done.stdout)
    assert rate is not None and float(rate.group(1)) <= 100 * (1 - ACCURACY_FLOOR) + 2, done.stdout
    assert done.stdout.count(".") >= 200
