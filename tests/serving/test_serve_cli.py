"""`trainflow step serve-model` and `trainflow serve` as the runner starts them: real processes and ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from model_files import constant_classifier_onnx, publish
from servers import free_port


def trainflow(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainflow", *args]


def test_serve_model_step_waits_for_a_version_reports_ports_and_stops_on_sigterm(tmp_path: Path) -> None:
    base, outputs = tmp_path / "exported", tmp_path / "outputs.json"
    proc = subprocess.Popen(
        trainflow(
            "step",
            "serve-model",
            "--model-name",
            "mnist",
            "--export-base",
            str(base),
            "--rest-port",
            "0",
            "--grpc-port",
            "0",
            "--poll-seconds",
            "0.2",
            "--outputs",
            str(outputs),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(2.0)
        assert proc.poll() is None and not outputs.exists()  # no version yet: serving nothing, reporting nothing
        publish(base, 1, constant_classifier_onnx(4))
        deadline = time.monotonic() + 30
        while not outputs.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        reported = json.loads(outputs.read_text())
        assert reported["model-name"] == "mnist" and reported["model-version"] == 1 and reported["pid"] == proc.pid
        assert reported["grpc-address"].startswith("127.0.0.1:")
        assert httpx.get(reported["rest-url"] + "/v2/health/ready").json() == {"ready": True}
        with socket.create_connection(tuple(reported["grpc-address"].rsplit(":", 1)), timeout=5):
            pass
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "Serving model 'mnist' version 1" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_on_a_taken_port_fails_with_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            trainflow("serve", "--model-base-path", str(tmp_path), "--rest-port", str(port), "--grpc-port", "0"),
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TRAINFLOW_LOG_LEVEL": "ERROR"},
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "--rest-port" in result.stderr


def test_serve_on_a_missing_directory_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    result = subprocess.run(
        trainflow("serve", "--model-base-path", str(missing), "--rest-port", "0", "--grpc-port", "0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0], result.stderr
    assert "--wait-for-model" in lines[0]


def test_serve_with_wait_for_model_serves_once_the_directory_gets_a_version(tmp_path: Path) -> None:
    base, port = tmp_path / "later", free_port()
    proc = subprocess.Popen(
        trainflow(
            "serve", "--model-base-path", str(base), "--wait-for-model", "--rest-port", str(port), "--grpc-port", "0"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.0)
        assert proc.poll() is None  # waiting, not failing
        publish(base, 1, constant_classifier_onnx(3))
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline and proc.poll() is None
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models/mnist", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        state = httpx.get(f"http://127.0.0.1:{port}/v1/models/mnist").json()["model_version_status"][0]
        assert state["version"] == "1" and state["state"] == "AVAILABLE"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
