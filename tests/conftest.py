"""Fixtures shared by every test: an isolated TRAINFLOW_HOME, a real S3 endpoint, MNIST data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "trainflow-test",
    "AWS_SECRET_ACCESS_KEY": "trainflow-test-secret",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def start_moto(extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """moto's standalone S3 server in its own process on a free loopback port."""
    port = free_port()
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=proc)
    except RuntimeError:
        proc.kill()
        raise
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(autouse=True)
def trainflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own TRAINFLOW_HOME and no stray endpoint settings."""
    home = tmp_path / "trainflow-home"
    monkeypatch.setenv("TRAINFLOW_HOME", str(home))
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "S3_ENDPOINT", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 endpoint (moto server) on loopback for the whole session."""
    proc, url = start_moto()
    try:
        yield url
    finally:
        stop(proc)


@pytest.fixture
def aws_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the AWS variables at the test endpoint; returns the endpoint URL."""
    for key, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return s3_endpoint


@pytest.fixture
def s3_bucket(aws_env: str) -> str:
    """A new, empty bucket; returns its s3:// URL."""
    import boto3

    name = f"tf-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real MNIST (../shared/data/mnist-10k) where present, else a small synthetic IDX dataset."""
    if SHARED_MNIST.is_dir():
        return SHARED_MNIST
    from trainflow.datasets import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("mnist-synthetic"))


@pytest.fixture
def mnist_s3_url(s3_bucket: str, mnist_dir: Path) -> str:
    """`mnist_dir` uploaded to a fresh bucket; returns s3://bucket/data/mnist/."""
    from trainflow.storage import mirror_dir

    url = f"{s3_bucket}/data/mnist/"
    mirror_dir(mnist_dir, url)
    return url
