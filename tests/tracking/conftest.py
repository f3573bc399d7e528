"""A real MLflow tracking server (SQLite backend store, local artifact root) on loopback, and a tracked model-train run.

The server is `mlflow server`, as a team runs it; tests read what trainflow logged back through `MlflowClient`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.commands import trainflow
from tests.servers import free_port, stop, wait_for_port

pytest.importorskip("mlflow", reason="the mlflow extra (pip install -e '.[mlflow,test]')")

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
REGISTERED = "mnist-tracked"
WORKFLOW = "tracked-run"

# Call steps of the workflow-run tests: a gate that fails until its marker file exists, a step after it, a wait
GATED_STEPS = """
import os, pathlib, time
def gate(marker: str) -> dict:
    if not pathlib.Path(marker).exists():
        raise ValueError("the marker is not there yet")
    return {"ok": "yes"}
def after(ok: str) -> dict:
    print("after: the gate said", ok)
    return {"done": ok}
def wait(seconds: int) -> dict:
    time.sleep(seconds)
    return {}
"""


@dataclass
class MlflowServer:
    uri: str
    proc: subprocess.Popen[bytes]
    root: Path

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def workflow_runs(self, experiment: str) -> tuple[Any, list[Any]]:
        """The experiment's one workflow run and the step runs nested under it."""
        client = self.client()
        found = client.get_experiment_by_name(experiment)
        assert found is not None, f"no experiment {experiment}"
        runs = client.search_runs([found.experiment_id])
        (workflow,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        return workflow, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == workflow.info.run_id]


def start_mlflow(root: Path, port: int | None = None) -> MlflowServer:
    """`mlflow server` with a SQLite store and a local artifact root under `root`, proxying artifacts to clients."""
    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no background job runner (huey)
    log = open(root / "server.log", "ab")  # noqa: SIM115 - the server writes it while it runs
    proc = subprocess.Popen(
        [
            MLFLOW,
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, timeout=120, proc=proc)
    except RuntimeError:
        proc.kill()
        raise
    return MlflowServer(f"http://127.0.0.1:{port}", proc, root)


def stop_mlflow(server: MlflowServer) -> None:
    import signal

    if server.proc.poll() is None:
        try:
            os.killpg(server.proc.pid, signal.SIGTERM)  # its uvicorn workers too
        except ProcessLookupError:
            pass
    stop(server.proc)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    try:
        yield server
    finally:
        stop_mlflow(server)


def run_trainflow(
    home: Path, env: dict[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`trainflow ARGS` with its own TRAINFLOW_HOME and `env` over this process's environment."""
    return trainflow(*args, timeout=timeout, env={"TRAINFLOW_HOME": str(home), **env})


@dataclass
class TrackedRun:
    home: Path
    uri: str
    info: dict[str, Any]
    train_log: str  # the train-model step's log: what tracking warned about, if anything


@pytest.fixture(scope="session")
def tracked_run(
    mlflow_server: MlflowServer, mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrackedRun]:
    """One short model-train run with tracking on and the model registered as mnist-tracked@champion, shared."""
    home = tmp_path_factory.mktemp("tracked-home")
    data = home / "mnist"
    shutil.copytree(mnist_dir, data)
    done = run_trainflow(
        home,
        {"MLFLOW_TRACKING_URI": mlflow_server.uri},
        "submit",
        "model-train",
        "-p",
        f"job-name={WORKFLOW}",
        "-p",
        f"s3-data-url={data}",
        "-p",
        "tf-worker=1",
        "-p",
        "model-train-steps=40",
        "-p",
        "model-serving=false",
        "-p",
        f"register-model={REGISTERED}",
        "-p",
        "register-alias=champion",
        "--wait",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    got = run_trainflow(home, {}, "get", WORKFLOW, "-o", "json")
    log = (home / "workflows" / WORKFLOW / "train-model.log").read_text()
    try:
        yield TrackedRun(home, mlflow_server.uri, json.loads(got.stdout), log)
    finally:
        run_trainflow(home, {}, "delete", "--all")  # its TensorBoard outlives the run otherwise
