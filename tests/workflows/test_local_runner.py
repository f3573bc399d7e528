"""The local backend end to end: real step processes, a real S3 endpoint, real TensorBoard."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.commands import delete_all_workflows, trainflow, wait_until
from tests.commands import get_workflow as get
from tests.commands import steps_by_name as steps
from trainflow.workflows.local.state import StateStore

pytestmark = pytest.mark.slow


def port_open(url: str) -> bool:
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


@pytest.fixture(autouse=True)
def delete_all_afterwards(trainflow_home: Path) -> Iterator[None]:
    yield
    delete_all_workflows(trainflow_home)


def submit(*params: str, wait: bool = True) -> subprocess.CompletedProcess[str]:
    args = ["submit", "model-train", *[a for p in params for a in ("-p", p)]]
    return trainflow(*args, *(["--wait"] if wait else []))


def test_model_train_runs_every_step_and_leaves_tensorboard_up(mnist_s3_url: str, s3_bucket: str) -> None:
    out = submit(
        f"s3-data-url={mnist_s3_url}",
        f"s3-train-base-url={s3_bucket}/models",
        "job-name=myjob-ab12c",
        "tf-worker=2",
        "model-train-steps=40",
        "model-serving=false",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Name: myjob-ab12c" in out.stdout
    info = get("myjob-ab12c")
    assert info["status"] == "Succeeded"
    by_name = steps(info)
    assert [s["name"] for s in info["steps"]] == [
        "download-dataset",
        "get-workflow-info",
        "tensorboard",
        "train-model",
        "export-model",
        "serve-model",
    ]
    assert by_name["serve-model"]["status"] == "Skipped"
    assert by_name["train-model"]["outputs"]["accuracy"] > 0.5
    assert by_name["export-model"]["outputs"]["model-version"] == 1
    assert by_name["get-workflow-info"]["outputs"]["train-dir"] == f"{s3_bucket}/models/unfinished/myjob-ab12c"

    listed = trainflow("list").stdout
    assert "myjob-ab12c" in listed and "Succeeded" in listed
    logs = trainflow("logs", "myjob-ab12c", "--step", "train-model").stdout
    assert "train-model: " in logs and "step=40/40" in logs

    url = by_name["tensorboard"]["outputs"]["url"]
    assert url in trainflow("tensorboard", "myjob-ab12c").stdout
    tags = wait_until(lambda: httpx.get(f"{url}data/plugin/scalars/tags", timeout=5).json() or None, timeout=60)
    assert any("loss" in tag for run in tags.values() for tag in run), tags

    again = submit(f"s3-data-url={mnist_s3_url}", "job-name=myjob-ab12c", wait=False)
    assert again.returncode != 0
    assert "already exists" in again.stderr and "trainflow retry myjob-ab12c" in again.stderr

    assert trainflow("delete", "myjob-ab12c").returncode == 0
    assert not port_open(url)
    assert "no workflows" in trainflow("list").stdout


def test_killed_runner_leaves_failed_and_retry_resumes_without_download(mnist_dir: Path, trainflow_home: Path) -> None:
    out = submit(
        f"s3-data-url={mnist_dir}",
        "job-name=crashy",
        "model-train-steps=300",
        "model-serving=false",
        "model-batch-size=50",
        wait=False,
    )
    assert out.returncode == 0, out.stderr
    log = trainflow_home / "workflows" / "crashy" / "train-model.log"
    wait_until(lambda: log.exists() and "checkpoint step=" in log.read_text(), timeout=180)
    state = StateStore(trainflow_home / "trainflow.db")
    runner_pid, _ = state.runner("crashy")
    trainer = next(pid for step, pid, _, _ in state.step_processes("crashy") if step == "train-model")
    os.kill(runner_pid, signal.SIGKILL)

    info = get("crashy")
    assert (
        info["status"] == "Failed"
        and "runner process" in info["message"]
        and "trainflow retry crashy" in info["message"]
    )
    assert steps(info)["train-model"]["status"] == "Failed"
    assert steps(info)["download-dataset"]["status"] == "Succeeded"
    wait_until(
        lambda: not psutil.pid_exists(trainer) or psutil.Process(trainer).status() == psutil.STATUS_ZOMBIE, timeout=30
    )

    retried = trainflow("retry", "crashy", "--wait")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    info = get("crashy")
    assert info["status"] == "Succeeded"
    download_log = (trainflow_home / "workflows" / "crashy" / "download-dataset.log").read_text()
    assert download_log.count("--- attempt") == 1  # not run again
    resumed = [line for line in log.read_text().splitlines() if "resumed from checkpoint" in line]
    assert resumed and " at step 0" not in resumed[-1]


def test_stop_ends_a_running_workflow(mnist_dir: Path, trainflow_home: Path) -> None:
    params = ("job-name=stopme", "model-train-steps=5000", "model=mlp")  # stopped mid-training: any model will do
    assert submit(f"s3-data-url={mnist_dir}", *params, wait=False).returncode == 0
    log = trainflow_home / "workflows" / "stopme" / "train-model.log"
    wait_until(lambda: log.exists() and "step=" in log.read_text(), timeout=180)
    out = trainflow("stop", "stopme")
    assert out.returncode == 0, out.stderr
    info = get("stopme")
    assert info["status"] == "Failed" and info["message"] == "stopped by user"
    assert steps(info)["train-model"]["status"] == "Failed"
    assert steps(info)["tensorboard"]["status"] == "Succeeded"  # services stay up


def test_two_workflows_at_once_do_not_interfere(mnist_dir: Path) -> None:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainflow",
                "submit",
                "model-train",
                "-p",
                f"job-name=twin-{i}",
                "-p",
                f"s3-data-url={mnist_dir}",
                "-p",
                "model-train-steps=20",
                "-p",
                "model-serving=false",
                "-p",
                "model=mlp",
                "-p",
                # different models: with equal parameters one run may reuse the other's finished steps
                # (the cache: same inputs, same outputs), which is not interference
                f"model-hidden-units={16 + i}",
                "--wait",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
    infos = [get(f"twin-{i}") for i in range(2)]
    assert all(i["status"] == "Succeeded" for i in infos)
    exports = {steps(i)["export-model"]["outputs"]["model-url"] for i in infos}
    assert len(exports) == 2  # each run its own export dir, each at version 1
    assert all(steps(i)["export-model"]["outputs"]["model-version"] == 1 for i in infos)


def test_unknown_workflow_and_step_give_one_line() -> None:
    out = trainflow("get", "nope")
    assert out.returncode != 0 and out.stderr.strip() == "error: no workflow named 'nope': see `trainflow list`"
    bad = trainflow("submit", "model-train", "-p", "tf-workers=2")
    assert bad.returncode != 0 and "unknown parameter(s) tf-workers" in bad.stderr
