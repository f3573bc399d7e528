"""A simulated cluster: the workflow's own containers run as loopback processes with exactly the pod's environment.

Each pod gets its container's env from the generated manifest plus what the training operator would set
for that manifest (tests/workflows/kubernetes/k8s_cluster_sim.py). What differs from a cluster, and only
that: service names become 127.0.0.1 with a free port (pods share one host here), the cache volume's
mountPath is a temp dir, `trainflow` is this interpreter, and the step's `/tmp/outputs/` is a temp dir.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from servers import free_port, run_together

from tests.workflows.kubernetes.k8s_cluster_sim import Pod, fill, pytorchjob_pods, tfjob_pods, workflow_values
from trainflow.workflows import MODEL_TRAIN
from trainflow.workflows.kubernetes import compile_pipeline, embedded_manifests
from trainflow.workflows.kubernetes.options import ClusterOptions, cluster_options
from trainflow.workflows.kubernetes.render import OUTPUTS_DIR
from trainflow.workflows.kubernetes.resources import CACHE_MOUNT

CLUSTER_VARS = (
    "TF_CONFIG",
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "PET_NNODES",
    "PET_NPROC_PER_NODE",
    "PET_NODE_RANK",
    "PET_RDZV_ENDPOINT",
    "PET_RDZV_BACKEND",
    "PET_MAX_RESTARTS",
    "TRAINFLOW_DIST_BACKEND",
    "TRAINFLOW_HOME",
)


class SimulatedCluster:
    """Runs a workflow's containers on this machine, the cache volume mounted from `volume`."""

    def __init__(self, workflow: dict[str, Any], root: Path) -> None:
        self.workflow, self.volume, self.root = workflow, root / "volume", root
        self.values = workflow_values(workflow)
        self.outputs: dict[str, dict[str, str]] = {}

    def env(self, container: dict[str, Any], extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CLUSTER_VARS}
        for var in container["env"]:
            if "value" in var:
                env[var["name"]] = fill(var["value"], self.values)
        # The cache claim is mounted at mountPath; here that path is a temp dir.
        mount = next(m["mountPath"] for m in container["volumeMounts"])
        assert env["TRAINFLOW_HOME"] == mount == CACHE_MOUNT
        env["TRAINFLOW_HOME"] = str(self.volume)
        if env.get("TRAINFLOW_OUTPUTS", "").startswith(CACHE_MOUNT):  # a training job's outputs, on the volume
            env["TRAINFLOW_OUTPUTS"] = str(self.volume) + env["TRAINFLOW_OUTPUTS"][len(CACHE_MOUNT) :]
        return {**env, **extra, "OMP_NUM_THREADS": "1"}

    def argv(self, container: dict[str, Any], inputs: dict[str, str]) -> list[str]:
        values = {**self.values, **{f"inputs.parameters.{k}": v for k, v in inputs.items()}}
        argv = [fill(a, values) for a in container["command"] + container["args"]]
        assert argv[0] == "trainflow"
        return [sys.executable, "-m", "trainflow", *argv[1:]]

    def run_step(self, name: str, inputs: dict[str, str]) -> dict[str, str]:
        """A container step to completion; returns the output parameters Argo would read from its files."""
        template = next(t for t in self.workflow["spec"]["templates"] if t["name"] == name)
        outputs_dir = self.root / "outputs" / name
        argv = self.argv(template["container"], inputs)
        env = self.env(template["container"], {})
        assert env["TRAINFLOW_OUTPUTS"] == OUTPUTS_DIR
        env["TRAINFLOW_OUTPUTS"] = f"{outputs_dir}/"  # the pod's /tmp/outputs/, here a temp dir
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        self.outputs[name] = {
            p["name"]: (outputs_dir / Path(p["valueFrom"]["path"]).name).read_text()
            for p in template["outputs"]["parameters"]
        }
        return self.outputs[name]

    def read_training_outputs(self, step: str) -> dict[str, str]:
        """Run the step's reader container (as Argo would, after the job) and return the outputs it exposes."""
        template = next(t for t in self.workflow["spec"]["templates"] if t["name"] == f"{step}-outputs")
        argv = [fill(a, self.values) for a in template["container"]["command"] + template["container"]["args"]]
        out_dir = self.root / "outputs" / step
        argv = [a.replace(CACHE_MOUNT, str(self.volume)).replace(OUTPUTS_DIR, f"{out_dir}/") for a in argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return {p["name"]: (out_dir / p["name"]).read_text() for p in template["outputs"]["parameters"]}

    def train(self, pods: list[Pod], inputs: dict[str, str], loopback: dict[str, str]) -> list[tuple[Pod, int, str]]:
        """Every training pod at once; `loopback` maps service addresses to 127.0.0.1:PORT."""
        commands = [
            (
                self.argv(pod.container, inputs),
                self.env(pod.container, {k: _replace_all(v, loopback) for k, v in pod.operator_env.items()}),
            )
            for pod in pods
        ]
        results = run_together(commands, self.root, timeout=200)
        return [(pod, code, log) for pod, (code, log) in zip(pods, results)]


def _replace_all(text: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        text = text.replace(old, new)
    return text


def prepare(
    job_kind: str, params: dict[str, str], mnist_dir: Path, tmp_path: Path, options: ClusterOptions | None = None
) -> tuple[SimulatedCluster, dict, dict[str, str]]:
    """Compile, then run download-dataset and get-workflow-info for real, as the DAG does before training."""
    [workflow] = compile_pipeline(
        MODEL_TRAIN,
        {
            "job-name": "sim",
            "s3-data-url": str(mnist_dir),
            "s3-train-base-url": str(tmp_path / "store"),
            "model": "mlp",
            "model-train-steps": "20",
            "model-batch-size": "50",
            **params,
        },
        job_kind,
        options=options,
    )
    cluster = SimulatedCluster(workflow, tmp_path)
    dataset = cluster.run_step("download-dataset", {})
    info = cluster.run_step("get-workflow-info", {})
    [job] = [m for m in embedded_manifests(workflow) if m["kind"] in ("PyTorchJob", "TFJob") and "spec" in m]
    return (
        cluster,
        job,
        {
            "dataset-path": dataset["dataset-path"],
            "train-dir": info["train-dir"],
            "export-base": info["export-base"],
        },
    )


def trained_metrics(train_dir: str) -> dict[str, Any]:
    return json.loads((Path(train_dir) / "metrics.json").read_text())


@pytest.mark.slow
def test_three_pytorchjob_pods_with_the_operators_environment_train_one_model(mnist_dir: Path, tmp_path: Path) -> None:
    cluster, job, inputs = prepare("pytorchjob", {"tf-worker": "3"}, mnist_dir, tmp_path)
    pods = pytorchjob_pods(job)
    assert [(p.replica_type, p.operator_env["PET_RDZV_ENDPOINT"]) for p in pods] == [
        ("Worker", "sim-worker-0:23456")
    ] * 3
    assert inputs["dataset-path"].startswith(str(cluster.volume))  # the cached dataset, on the shared volume
    port = free_port()
    results = cluster.train(pods, inputs, {"sim-worker-0": "127.0.0.1", "23456": str(port)})
    assert [code for _, code, _ in results] == [0, 0, 0], "\n".join(log for _, _, log in results)
    metrics = trained_metrics(inputs["train-dir"])
    assert metrics["world_size"] == 3 and metrics["global_step"] == 20
    assert cluster.read_training_outputs("train-model")["accuracy"] == str(metrics["accuracy"])
    # the pod hosting rank 0 exported the model; the export-model pod reuses that version
    exported = cluster.run_step(
        "export-model", {"train-dir": inputs["train-dir"], "export-base": inputs["export-base"]}
    )
    assert exported["model-version"] == "1" and exported["global-step"] == "20"
    assert sorted(p.name for p in Path(inputs["export-base"]).iterdir()) == ["1"]


@pytest.mark.slow
def test_three_tfjob_workers_and_a_parameter_server_with_tf_config_train_one_model(
    mnist_dir: Path, tmp_path: Path
) -> None:
    cluster, job, inputs = prepare("tfjob", {"tf-worker": "3", "tf-ps": "1"}, mnist_dir, tmp_path)
    pods = tfjob_pods(job)
    assert [(p.replica_type, p.index) for p in pods] == [("Worker", 0), ("Worker", 1), ("Worker", 2), ("PS", 0)]
    addresses = [a for t in json.loads(pods[0].operator_env["TF_CONFIG"])["cluster"].values() for a in t]
    assert addresses[0] == "sim-worker-0.default.svc:2222"
    loopback = {a: f"127.0.0.1:{free_port()}" for a in addresses}
    results = cluster.train(pods, inputs, loopback)
    assert [code for _, code, _ in results] == [0, 0, 0, 0], "\n".join(log for _, _, log in results)
    assert "ps:0 does not train" in results[3][2]
    metrics = trained_metrics(inputs["train-dir"])
    assert metrics["world_size"] == 3 and metrics["global_step"] == 20


@pytest.mark.slow
def test_gpu_requesting_pytorchjob_pods_fall_back_to_gloo_where_there_is_no_gpu(
    mnist_dir: Path, tmp_path: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the fallback where the node has no GPU")
    gpu = cluster_options(resources=["train-model:gpu=1"])
    cluster, job, inputs = prepare("pytorchjob", {"tf-worker": "2"}, mnist_dir, tmp_path, gpu)
    pods = pytorchjob_pods(job)
    assert all(p.container["resources"]["limits"]["nvidia.com/gpu"] == "1" for p in pods)
    results = cluster.train(pods, inputs, {"sim-worker-0": "127.0.0.1", "23456": str(free_port())})
    assert [code for _, code, _ in results] == [0, 0], "\n".join(log for _, _, log in results)
    assert all("NCCL was requested but 0 GPU(s) are visible" in log for _, _, log in results)
    assert trained_metrics(inputs["train-dir"])["world_size"] == 2
