"""Real servers for tests and benchmarks: free loopback ports, moto's S3 server in its own process, a file server."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=proc)
    except RuntimeError:
        proc.kill()
        raise
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM first (an elastic agent then stops its workers too, instead of orphaning them), SIGKILL after `grace` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_together(
    commands: list[tuple[list[str], dict[str, str]]], log_dir: Path, timeout: float
) -> list[tuple[int, str]]:
    """Start every (argv, env) at once and wait for all: (exit code, output) each; stopped at `timeout`.

    Output goes to files, not pipes: a process blocked on a full pipe would stall its peers' world.
    """
    procs, logs = [], []
    try:
        for i, (argv, env) in enumerate(commands):
            logs.append(open(log_dir / f"process-{i}.log", "w+b"))  # noqa: SIM115 - closed by stop()
            procs.append(subprocess.Popen(argv, env=env, stdout=logs[-1], stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            stop(proc)
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read().decode(errors="replace"))
        log.close()
    return [(proc.returncode, output) for proc, output in zip(procs, outputs)]


class QuietFileHandler(SimpleHTTPRequestHandler):
    """Serves a folder's files without logging each request to stderr."""

    def log_message(self, *args: object) -> None:
        pass


class FileServer:
    """`root`'s files over HTTP on a loopback port, from a thread; `with` gives its base URL. A handler that holds
    a request back waits on `release`, which leaving the `with` sets, so the server can shut down."""

    def __init__(self, root: Path, handler: type[SimpleHTTPRequestHandler] = QuietFileHandler) -> None:
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
