"""One trained, served workflow and one dashboard server, shared by the ui tests (training is the slow part)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from servers import free_port, stop, wait_for_port

WORKFLOW = "ui-test"
BROKEN = "ui-broken"
IRIS = "ui-iris"  # a tabular model: iris measurements as CSV, species names as labels
TRAIN_STEPS = 150


@dataclass
class Dashboard:
    """A `trainflow ui` process over its own TRAINFLOW_HOME, where WORKFLOW was just submitted."""

    url: str
    home: Path
    env: dict[str, str]

    def trainflow(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trainflow", *args], capture_output=True, text=True, env=self.env, timeout=timeout
        )

    def submit(self, job: str, data: str, *flags: str) -> None:
        """Submit a short model-train run (MLP, TRAIN_STEPS steps) named `job` on the dataset at `data`."""
        submitted = self.trainflow(
            "submit",
            "model-train",
            *flags,
            "-p",
            f"job-name={job}",
            "-p",
            f"s3-data-url={data}",
            "-p",
            "model=mlp",
            "-p",
            f"model-train-steps={TRAIN_STEPS}",
            "-p",
            "model-batch-size=64",
        )
        assert submitted.returncode == 0, submitted.stderr

    def workflow(self, name: str = WORKFLOW) -> dict:
        return httpx.get(f"{self.url}/api/workflows/{name}", timeout=30).json()

    def wait_finished(self, name: str = WORKFLOW, timeout: float = 280) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.workflow(name)
            if info["status"] not in ("Pending", "Running"):
                return info
            time.sleep(1)
        raise AssertionError(f"workflow {name} still {info['status']} after {timeout}s")


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Iterator[Dashboard]:
    """Submits a short model-train run (MLP, 150 steps) and a run that fails, then serves the dashboard."""
    home = tmp_path_factory.mktemp("ui-home")
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "S3_ENDPOINT")}
    env.update(TRAINFLOW_HOME=str(home), OMP_NUM_THREADS="1")
    port = free_port()
    board = Dashboard(f"http://127.0.0.1:{port}", home, env)
    server = subprocess.Popen(
        [sys.executable, "-m", "trainflow", "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # --no-cache: the browser tests' live run trains the same model byte for byte, and when it exports first
        # (a loaded machine) this run's export-model would be Cached from it; the tests expect every step to run
        for job, data in ((WORKFLOW, str(mnist_dir)), (BROKEN, str(home / "no-such-dataset"))):
            board.submit(job, data, "--no-cache")
        wait_for_port(port, timeout=60, proc=server)
        yield board
    finally:
        board.trainflow("delete", "--all")
        stop(server)


@pytest.fixture(scope="session")
def finished(dashboard: Dashboard) -> Dashboard:
    """The dashboard once both workflows have ended."""
    assert dashboard.wait_finished(WORKFLOW)["status"] == "Succeeded"
    assert dashboard.wait_finished(BROKEN)["status"] == "Failed"
    return dashboard


@pytest.fixture(scope="session")
def iris(finished: Dashboard, tmp_path_factory: pytest.TempPathFactory) -> Dashboard:
    """The dashboard once a model-train run on iris (CSV, label column `species`) is served too."""
    from tests.datasets.sample_data import write_iris_csv

    source = write_iris_csv(tmp_path_factory.mktemp("iris"))
    finished.submit(IRIS, str(source), "-p", "data-label-column=species", "-p", "model-name=iris")
    assert finished.wait_finished(IRIS)["status"] == "Succeeded"
    return finished
