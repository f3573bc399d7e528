"""The compiled model-train's pods, run in the built image: download, train on 2 workers, export, serve.

Every command is the one the image's own `trainflow compile model-train` gives a pod, with the pod's
environment (the manifest's, plus what the training operator sets), the cache claim bound at its
mountPath and the step's /tmp/outputs/ bound to a temp dir. What differs from a cluster: pods share
this machine's network, so a pod's name resolves to 127.0.0.1 and ports that would clash are free
ones; the S3 store is moto's server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from servers import AWS_TEST_ENV, free_port

from tests.image.conftest import MakePod
from tests.image.runtime import Pod, Running
from tests.workflows.kubernetes.k8s_cluster_sim import fill, pytorchjob_pods, workflow_values
from trainflow.workflows.kubernetes import embedded_manifests

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1800)]

CACHE_MOUNT = "/var/lib/trainflow"
OUTPUTS = "/tmp/outputs"


def test_the_image_runs_its_entrypoint_with_the_package_data(make_pod: MakePod, tmp_path: Path) -> None:
    pod = make_pod("probe", {CACHE_MOUNT: tmp_path})
    version = pod.run(["trainflow", "--version"], {})
    assert version.returncode == 0 and "0.1.0" in version.stdout, version.stderr
    # The pipeline schema (package data) and the kubernetes extra are in the image.
    shown = pod.run(["trainflow", "pipeline", "show", "model-train"], {})
    assert shown.returncode == 0 and "serve-model" in shown.stdout, shown.stderr
    extra = pod.run(["python", "-c", "import kubernetes, onnxruntime, torch; print(torch.__version__)"], {})
    assert extra.returncode == 0 and "+cpu" in extra.stdout, extra.stderr


class ImageWorkflow:
    """The workflow's containers as pods of the image, the cache volume bound from `root/volume`."""

    def __init__(self, workflow: dict[str, Any], make_pod: MakePod, root: Path, secrets: dict[str, str]) -> None:
        self.workflow, self.make_pod, self.root, self.secrets = workflow, make_pod, root, secrets
        self.volume = root / "volume"
        self.volume.mkdir()
        self.values = workflow_values(workflow)

    def template(self, name: str) -> dict[str, Any]:
        return next(t for t in self.workflow["spec"]["templates"] if t["name"] == name)

    def command(self, container: dict[str, Any], inputs: dict[str, str]) -> list[str]:
        values = {**self.values, **{f"inputs.parameters.{k}": v for k, v in inputs.items()}}
        return [fill(a, values) for a in container["command"] + container.get("args", [])]

    def env(self, container: dict[str, Any], extra: dict[str, str]) -> dict[str, str]:
        env = {"OMP_NUM_THREADS": "1"}
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = fill(var["value"], self.values)
            elif "secretKeyRef" in var.get("valueFrom", {}):
                env[var["name"]] = self.secrets[var["valueFrom"]["secretKeyRef"]["key"]]
        return {**env, **extra}

    def pod(self, hostname: str, container: dict[str, Any], outputs: Path | None = None, **kwargs: Any) -> Pod:
        [mount] = container["volumeMounts"]
        volumes = {mount["mountPath"]: self.volume}
        if outputs is not None:
            outputs.mkdir(parents=True)
            volumes[OUTPUTS] = outputs
        return self.make_pod(hostname, volumes, **kwargs)

    def run_step(self, name: str, inputs: dict[str, str], timeout: float = 300) -> dict[str, str]:
        """A container step to completion; the output parameters Argo would read from its files."""
        template = self.template(name)
        container, outputs = template["container"], self.root / "outputs" / name
        pod = self.pod(name, container, outputs)
        done = pod.run(self.command(container, inputs), self.env(container, {}), timeout=timeout)
        assert done.returncode == 0, f"{name}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        return {
            p["name"]: (outputs / Path(p["valueFrom"]["path"]).name).read_text()
            for p in template["outputs"]["parameters"]
        }

    def manifest(self, kind: str, step: str) -> dict[str, Any]:
        """The object of `kind` that `step`'s resource template creates."""
        return next(
            m
            for m in embedded_manifests(self.workflow)
            if m["kind"] == kind and "spec" in m and m["metadata"]["labels"].get("trainflow.io/step") == step
        )


def compile_in_image(make_pod: MakePod, tmp_path: Path, params: dict[str, str]) -> dict[str, Any]:
    """`trainflow compile model-train` as a user runs it, in the image."""
    pod = make_pod("compile", {CACHE_MOUNT: tmp_path / "compile"})
    args = [a for key, value in params.items() for a in ("-p", f"{key}={value}")]
    done = pod.run(["trainflow", "compile", "model-train", *args], {})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def train(flow: ImageWorkflow, inputs: dict[str, str], timeout: float = 300) -> list[tuple[str, int, str]]:
    """Every pod of the PyTorchJob at once, each named as the operator names it, with its environment."""
    job = flow.manifest("PyTorchJob", "train-model")
    pods = pytorchjob_pods(job)
    name = job["metadata"]["name"]
    hostnames = [f"{name}-{p.replica_type.lower()}-{p.index}" for p in pods]
    port = str(free_port())  # every pod listens on this machine: the container port may be taken
    started: list[tuple[str, Running]] = []
    try:
        for hostname, p in zip(hostnames, pods):
            env = {k: v.replace(":23456", f":{port}") for k, v in p.operator_env.items()}
            pod = flow.pod(hostname, p.container, hosts=dict.fromkeys(hostnames, "127.0.0.1"))
            log = flow.root / f"{hostname}.log"
            started.append((hostname, pod.start(flow.command(p.container, inputs), flow.env(p.container, env), log)))
        deadline = time.monotonic() + timeout
        for _, running in started:
            try:
                running.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    finally:
        for _, running in started:
            running.stop()
    return [(hostname, running.proc.returncode, running.output()) for hostname, running in started]


def wait_ready(url: str, running: Running, timeout: float) -> float:
    """Seconds until `url` answers 200 (the Deployment's readinessProbe)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        assert running.proc.poll() is None, f"the model server exited: {running.output()[-3000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout}s: {running.output()[-3000:]}")


def serve(flow: ImageWorkflow, inputs: dict[str, str]) -> tuple[Running, int, int, float]:
    """The serve-model Deployment's container, on free ports; (server, rest port, grpc port, seconds to ready)."""
    [container] = flow.manifest("Deployment", "serve-model")["spec"]["template"]["spec"]["containers"]
    rest, grpc = free_port(), free_port()
    command = flow.command(container, inputs)
    command[command.index("--rest-port") + 1] = str(rest)
    command[command.index("--grpc-port") + 1] = str(grpc)
    probe = container["readinessProbe"]["httpGet"]["path"]
    pod = flow.pod("serve-model", container)
    running = pod.start(command, flow.env(container, {}), flow.root / "serve-model.log")
    return running, rest, grpc, wait_ready(f"http://127.0.0.1:{rest}{probe}", running, timeout=120)


def predict_from_outside(address: str, protocol: str, mnist_dir: Path) -> str:
    """This machine's `trainflow predict` (not the image's) asking the served model."""
    argv = [sys.executable, "-m", "trainflow", "predict", "--server", address, "--protocol", protocol]
    argv += ["--data-dir", str(mnist_dir), "--num", "20"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_compiled_model_train_pods_download_train_export_and_serve_in_the_image(
    make_pod: MakePod, image: str, mnist_s3_url: str, mnist_dir: Path, aws_env: str, tmp_path: Path
) -> None:
    bucket = mnist_s3_url.split("/data/")[0]
    workflow = compile_in_image(
        make_pod,
        tmp_path,
        {
            "job-name": "sim",
            "tf-model-image": image,
            "tf-serving-image": image,
            "s3-data-url": mnist_s3_url,
            "s3-train-base-url": f"{bucket}/runs",
            "aws-endpoint-url": aws_env,
            "aws-region": AWS_TEST_ENV["AWS_REGION"],
            "tf-worker": "2",
            "model": "mlp",
            "model-train-steps": "40",
            "model-batch-size": "50",
        },
    )
    secrets = {
        "awsAccessKeyID": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        "awsSecretAccessKey": AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
    }
    flow = ImageWorkflow(workflow, make_pod, tmp_path, secrets)

    dataset = flow.run_step("download-dataset", {})
    assert dataset["dataset-path"].startswith(CACHE_MOUNT)
    info = flow.run_step("get-workflow-info", {})
    assert info["train-dir"].startswith(f"{bucket}/runs/")
    inputs = {
        "dataset-path": dataset["dataset-path"],
        "train-dir": info["train-dir"],
        "export-base": info["export-base"],
    }

    results = train(flow, inputs)
    assert [code for _, code, _ in results] == [0, 0], "\n".join(f"--- {h}\n{log[-3000:]}" for h, _, log in results)
    trained = flow.run_step("train-model-outputs", inputs)
    assert float(trained["accuracy"]) > 0.7, trained

    exported = flow.run_step("export-model", {"train-dir": inputs["train-dir"], "export-base": inputs["export-base"]})
    assert exported["model-version"] == "1", exported

    running, rest, grpc, ready_s = serve(flow, {"export-base": inputs["export-base"]})
    try:
        print(f"model server ready {ready_s:.1f}s after its container started")
        for address, protocol in ((f"127.0.0.1:{rest}", "rest"), (f"127.0.0.1:{grpc}", "grpc")):
            answer = predict_from_outside(address, protocol, mnist_dir)
            [right] = re.findall(r"Accuracy: (\d+)/20 ", answer)
            assert int(right) >= 14, answer[-500:]
        if os.environ.get("TRAINFLOW_IMAGE_TIMINGS"):
            Path(os.environ["TRAINFLOW_IMAGE_TIMINGS"]).write_text(json.dumps({"serve_ready_s": ready_s}))
    finally:
        running.stop()
