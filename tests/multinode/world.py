"""Running pods on the nodes of a namespace cluster: trainflow commands with exactly the operator's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.multinode.netns import Cluster
from tests.multinode.operator_env import Pod, service_names

# What a pod must not inherit from the test process: the operator sets the world, the test the endpoint.
HOST_ONLY_VARS = (
    "TF_CONFIG",
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "GROUP_RANK",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "S3_ENDPOINT",
    "AWS_PROFILE",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
)


def base_env(**extra: str) -> dict[str, str]:
    """The test's environment (PATH, PYTHONPATH, TRAINFLOW_HOME) minus cluster variables, one thread per process."""
    env = {k: v for k, v in os.environ.items() if k not in HOST_ONLY_VARS and not k.startswith("PET_")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def trainflow(*args: str) -> list[str]:
    """The `trainflow` command of this interpreter (the pods' image)."""
    return [sys.executable, "-m", "trainflow", *args]


def nodes_for(pods: Sequence[Pod], namespace: str = "default") -> dict[str, tuple[str, ...]]:
    """One node per pod, answering to the names of the pod's headless Service."""
    return {pod.name: service_names(pod.name, namespace) for pod in pods}


@dataclass
class Running:
    """A pod's process on its node."""

    pod: Pod
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_pods(
    cluster: Cluster, pods: Sequence[Pod], argv: Sequence[str], env: Mapping[str, str], log_dir: Path, suffix: str = ""
) -> list[Running]:
    """Every pod's container at once, each on its own node, with `env` plus what the operator sets for it."""
    log_dir.mkdir(parents=True, exist_ok=True)
    return [
        Running(
            pod,
            cluster.popen(pod.name, argv, {**env, **pod.env}, log_dir / f"{pod.name}{suffix}.log"),
            log_dir / f"{pod.name}{suffix}.log",
        )
        for pod in pods
    ]


def wait_all(cluster: Cluster, running: Sequence[Running], timeout: float) -> list[int | None]:
    """Exit codes once all have ended; None for a pod still running at `timeout` (its node's processes are killed)."""
    deadline = time.monotonic() + timeout
    codes: list[int | None] = []
    for item in running:
        try:
            codes.append(item.proc.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            codes.append(None)
            cluster.kill(item.pod.name)
            item.proc.wait()
    return codes


def logs(running: Sequence[Running]) -> str:
    return "\n".join(f"===== {item.pod.name} =====\n{item.output()}" for item in running)


def python_on(cluster: Cluster, node: str, code: str, env: Mapping[str, str], timeout: float = 60) -> str:
    """Run a Python snippet on a node; its stdout, or AssertionError with its stderr."""
    done = cluster.run(node, [sys.executable, "-c", code], env, timeout=timeout)
    assert done.returncode == 0, f"on {node}: {done.stderr}"
    return done.stdout


def wait_listening(
    cluster: Cluster, node: str, host: str, port: int, env: Mapping[str, str], timeout: float = 60
) -> None:
    """Wait until `host:port` accepts connections as seen from `node`."""
    python_on(
        cluster,
        node,
        f"""
import socket, time
deadline = time.monotonic() + {timeout}
while True:
    try:
        socket.create_connection(({host!r}, {port}), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
""",
        env,
        timeout=timeout + 10,
    )


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
