"""Commands on one workflow at once (retry, submit, resubmit, delete): one runner, nothing left behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import psutil
import pytest

from tests.commands import delete_all_workflows, trainflow

pytestmark = pytest.mark.slow
FAILING = ["-p", "s3-data-url=/nonexistent", "-p", "model-serving=false"]  # fails in its first step, in seconds
ALREADY_RUNNING = "error: workflow {} is already running: `trainflow get {}` shows its progress"


def at_once(*commands: list[str], timeout: float = 120) -> list[tuple[int, str, str]]:
    """Start every `trainflow` command together; (exit code, stdout, stderr) of each."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "trainflow", *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for c in commands
    ]
    outputs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]


def get(name: str) -> dict:
    out = trainflow("get", name, "-o", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def processes_of(home: Path) -> list[psutil.Process]:
    """Live processes started for workflows of `home` (runners, steps, services, what they started)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ", "status"], ad_value=None):
        env = proc.info["environ"] or {}
        if (
            proc.pid != os.getpid()
            and proc.info["status"] != psutil.STATUS_ZOMBIE
            and (env.get("TRAINFLOW_HOME") == str(home) or any(str(home) in a for a in proc.info["cmdline"] or []))
        ):
            found.append(proc)
    return found


def runners(home: Path, name: str) -> list[psutil.Process]:
    """The runners of `name`: titled `trainflow runner NAME`, or by the command line they were started with."""
    found = []
    for proc in processes_of(home):
        line = " ".join(a for a in proc.info["cmdline"] or [] if a)  # a title pads the rest with empty args
        if line == f"trainflow runner {name}" or line.endswith(f" workflow-runner {name}"):
            found.append(proc)
    return found


def settled(home: Path, name: str, timeout: float = 60) -> dict:
    """The workflow once it has ended and its runners are gone; fails if a runner is still there after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = get(name)
        if info["status"] not in ("Pending", "Running") and not runners(home, name):
            return info
        time.sleep(0.3)
    raise AssertionError(f"runners of {name} still there after {timeout}s: {[p.pid for p in runners(home, name)]}")


def _parent(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


class RunnerCount:
    """The most runner processes of one workflow seen alive at the same time, sampled in a thread."""

    def __init__(self, home: Path, name: str) -> None:
        self.home, self.name, self.most, self._done = home, name, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            found = runners(self.home, self.name)
            pids = {proc.pid for proc in found}
            # A runner's child between its fork and its exec (a step starting) still shows the runner's title.
            alone = [proc for proc in found if _parent(proc) not in pids]
            self.most = max(self.most, len(alone))
            time.sleep(0.05)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)


@pytest.fixture(autouse=True)
def delete_all_afterwards(trainflow_home: Path) -> Iterator[None]:
    yield
    delete_all_workflows(trainflow_home)
    for proc in processes_of(trainflow_home):  # what a failed test left: never let it outlive the test
        proc.kill()


@pytest.fixture
def stalled_http() -> Iterator[str]:
    """An HTTP source that accepts connections and never answers: a download from it runs until it times out."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/mnist/"


def test_simultaneous_retries_start_one_runner_and_leave_none(trainflow_home: Path) -> None:
    assert trainflow("submit", "model-train", "-p", "job-name=rr2", *FAILING, "--wait").returncode == 1
    for _ in range(3):  # a race is a matter of timing: a few rounds make a regression show
        with RunnerCount(trainflow_home, "rr2") as count:
            results = at_once(*[["retry", "rr2"]] * 6)
            info = settled(trainflow_home, "rr2")
        assert count.most == 1
        started = [out for code, out, _ in results if code == 0]
        refused = [err.strip() for code, _, err in results if code != 0]
        assert started and all(out.strip() == "rr2: retrying" for out in started)
        assert all(line.startswith(ALREADY_RUNNING.format("rr2", "rr2")) and "\n" not in line for line in refused)
        assert info["status"] == "Failed" and "download-dataset failed" in info["message"]
    time.sleep(2)
    assert runners(trainflow_home, "rr2") == []


def test_delete_stops_every_process_of_a_workflow_retried_at_once(trainflow_home: Path, stalled_http: str) -> None:
    out = trainflow(
        "submit", "model-train", "-p", "job-name=busy", "-p", f"s3-data-url={stalled_http}", "-p", "model-serving=false"
    )
    assert out.returncode == 0, out.stderr
    assert trainflow("stop", "busy").returncode == 0
    assert get("busy")["status"] == "Failed"
    at_once(*[["retry", "busy"]] * 6)
    deadline = time.monotonic() + 60
    while get("busy")["steps"][0]["status"] != "Running" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert get("busy")["steps"][0]["status"] == "Running"  # the download hangs on the stalled source
    assert len(runners(trainflow_home, "busy")) == 1
    second = trainflow("workflow-runner", "busy")  # started by hand: it must not run the steps a second time
    assert second.returncode != 0 and "workflow busy already has a runner" in second.stderr
    assert len(runners(trainflow_home, "busy")) == 1

    out = trainflow("delete", "busy")
    assert out.returncode == 0 and out.stdout.strip() == 'Workflow "busy" deleted'
    assert processes_of(trainflow_home) == []  # runner, download, tensorboard and its data server: all gone
    assert not (trainflow_home / "workflows" / "busy").exists()
    assert trainflow("get", "busy").returncode != 0


def test_delete_while_a_retry_starts_leaves_nothing(trainflow_home: Path) -> None:
    for i in range(3):
        name = f"gone-{i}"
        assert trainflow("submit", "model-train", "-p", f"job-name={name}", *FAILING, "--wait").returncode == 1
        (_, retry_out, retry_err), (delete_code, _, delete_err) = at_once(["retry", name], ["delete", name])
        assert delete_code == 0, delete_err
        assert retry_out.strip() == f"{name}: retrying" or retry_err.strip() == (
            f"error: no workflow named '{name}': see `trainflow list`"
        )
        time.sleep(2)  # a runner started by the retry would be running its steps by now
        assert trainflow("get", name).returncode != 0
        assert processes_of(trainflow_home) == []
        assert not (trainflow_home / "workflows" / name).exists()


def test_same_job_name_submitted_and_resubmitted_at_once_makes_one_workflow(trainflow_home: Path) -> None:
    assert trainflow("submit", "model-train", "-p", "job-name=source", *FAILING, "--wait").returncode == 1
    submit = ["submit", "model-train", "-p", "job-name=dup", *FAILING]
    with RunnerCount(trainflow_home, "dup") as count:
        results = at_once(*[submit] * 3, *[["resubmit", "source", "--job-name", "dup"]] * 3)
        settled(trainflow_home, "dup")
    assert count.most == 1
    assert sum(code == 0 for code, _, _ in results) == 1
    refused = [err.strip() for code, _, err in results if code != 0]
    assert all(line.startswith("error: a workflow named 'dup' already exists") and "\n" not in line for line in refused)
    assert sorted(i["name"] for i in json.loads(trainflow("list", "-o", "json").stdout)) == ["dup", "source"]


def test_retry_keeps_the_first_start_so_duration_spans_every_run(trainflow_home: Path) -> None:
    assert trainflow("submit", "model-train", "-p", "job-name=twice", *FAILING, "--wait").returncode == 1
    first = get("twice")
    time.sleep(2)
    assert trainflow("retry", "twice", "--wait").returncode == 1
    again = get("twice")
    assert again["started_at"] == first["started_at"]
    assert again["finished_at"] > first["finished_at"] + 2
    listed = next(i for i in json.loads(trainflow("list", "-o", "json").stdout) if i["name"] == "twice")
    assert (listed["started_at"], listed["finished_at"]) == (again["started_at"], again["finished_at"])
    shown = trainflow("get", "twice").stdout
    duration = next(line for line in shown.splitlines() if line.startswith("Duration:")).split()[1]
    assert duration != "0s" and int(duration.rstrip("s")) >= 2
