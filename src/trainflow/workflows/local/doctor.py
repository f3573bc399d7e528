"""`trainflow doctor` for the local backend: can this machine run, watch and serve workflows?"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from trainflow.workflows.doctor import FAIL, OK, WARN, Check

# The example's ports: `trainflow predict` and TensorBoard users expect them.
WELL_KNOWN_PORTS = (("model server REST", 8501), ("model server gRPC", 9000), ("TensorBoard", 6006))
PACKAGES = ("torch", "onnxruntime", "tensorboard", "grpcio")


def local_checks(home: Path) -> Iterator[Check]:
    yield _home(home)
    yield _state(home)
    for package in PACKAGES:
        yield _package(package)
    for label, port in WELL_KNOWN_PORTS:
        yield _port(label, port)


def _home(home: Path) -> Check:
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(
            "home",
            FAIL,
            f"cannot write to TRAINFLOW_HOME {home}: {exc.strerror}",
            "set TRAINFLOW_HOME to a writable directory",
        )
    return Check("home", OK, f"TRAINFLOW_HOME {home} is writable")


def _state(home: Path) -> Check:
    from trainflow.workflows.errors import WorkflowError
    from trainflow.workflows.local.layout import Layout
    from trainflow.workflows.local.state import StateStore

    path = Layout(home).db
    try:
        count = len(StateStore(path).names())
    except WorkflowError as exc:
        return Check("state", FAIL, str(exc), f"move {path} aside; trainflow makes a new one")
    return Check("state", OK, f"state database {path} opens ({count} workflows)")


def _package(name: str) -> Check:
    import importlib.metadata  # 10-15 ms of every command that opens the local backend, for `doctor` alone

    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return Check(f"package {name}", FAIL, f"{name} is not installed", "pip install -c constraints.txt -e .")
    return Check(f"package {name}", OK, f"{name} {version}")


def _port(label: str, port: int) -> Check:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return Check(
                f"port {port}",
                WARN,
                f"{port} ({label}) is in use: trainflow picks a free port instead",
                "trainflow services lists trainflow's own servers; stop them with trainflow delete",
            )
    return Check(f"port {port}", OK, f"{port} ({label}) is free")
