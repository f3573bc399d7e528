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
