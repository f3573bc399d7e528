"""Long-running processes say what they are in `ps`: the runner, the training workers and their fork server, a server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.commands import trainflow
from tests.datasets.sample_data import write_iris_csv


@contextmanager
def _started(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`trainflow ARGS...` in its own process group, stopped with everything it started."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainflow", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        family = [proc.pid, *(p.pid for p in _descendants(proc.pid))]
        for pid in family:
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)  # workers start their own sessions
            except (ProcessLookupError, PermissionError):
                pass
        proc.wait(timeout=30)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _titles(pid: int) -> list[str]:
    found = []
    for p in [psutil.Process(pid), *_descendants(pid)]:
        try:
            found.append(" ".join(" ".join(p.cmdline()).split()))
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass
    return found


def _wait_for(pid: int, seen: Callable[[list[str]], bool], timeout: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout
    titles = _titles(pid)
    while not seen(titles):
        assert time.monotonic() < deadline, titles
        time.sleep(0.2)
        titles = _titles(pid)
    return titles


@pytest.mark.slow
def test_training_workers_and_their_fork_server_have_titles(trainflow_home: Path, tmp_path: Path) -> None:
    source = write_iris_csv(tmp_path / "iris")
    synced = trainflow("data", "sync", str(source), "--name", "iris", "--label-column", "species")
    assert synced.returncode == 0, synced.stderr
    data_dir = trainflow_home / "cache" / "datasets" / "iris"
    train_dir = tmp_path / "iris-job"
    args = ("train", "--data-dir", str(data_dir), "--train-dir", str(train_dir), "--workers", "2")
    with _started(*args, "--train-steps", "1000000", "--batch-size", "4", "--checkpoint-every", "100000") as proc:
        titles = _wait_for(
            proc.pid, lambda t: {"trainflow worker 1/2 job iris-job", "trainflow worker 2/2 job iris-job"} <= set(t)
        )
        assert f"trainflow fork server for pid {proc.pid}" in titles, titles
        assert not [t for t in titles if "multiprocessing.forkserver" in t], titles


def test_a_model_server_is_titled_with_its_model_and_port(trainflow_home: Path, tmp_path: Path) -> None:
    args = ("serve", "--model-base-path", str(tmp_path / "models"), "--wait-for-model", "--model-name", "digits")
    with _started(*args, "--rest-port", "0", "--grpc-port", "0") as proc:
        titles = _wait_for(proc.pid, lambda t: t[0].startswith("trainflow serve digits :"))
        port = int(titles[0].rsplit(":", 1)[1])
        listening = {c.laddr.port for c in psutil.Process(proc.pid).net_connections() if c.status == "LISTEN"}
        assert port in listening, (titles, listening)


def test_a_workflows_runner_is_titled_with_the_workflows_name(trainflow_home: Path, tmp_path: Path) -> None:
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(
        'name: napper\nsteps:\n  - name: nap\n    kind: command\n    argv: [python3, -c, "import time; time.sleep(60)"]\n'
    )
    out = trainflow("submit", str(pipeline))
    assert out.returncode == 0, out.stderr
    name = out.stdout.split("Name: ")[1].split()[0]
    try:
        deadline = time.monotonic() + 60
        while not [
            p
            for p in psutil.process_iter(["cmdline"])
            if " ".join(" ".join(p.info["cmdline"] or ()).split()) == f"trainflow runner {name}"
        ]:
            assert time.monotonic() < deadline, f"no process titled 'trainflow runner {name}'"
            time.sleep(0.2)
    finally:
        trainflow("stop", name)
