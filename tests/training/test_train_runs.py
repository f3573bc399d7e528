"""`trainflow train` as users and operators run it: real worker processes under the elastic agent."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import psutil
import pytest
from servers import free_port, run_together, stop

from trainflow.errors import PERMANENT_EXIT_CODE, TRANSIENT_EXIT_CODE


def trainflow(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainflow", *args],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        timeout=timeout,
    )


def train_args(data_dir: Path, train_dir: str, *extra: str) -> list[str]:
    return ["train", "--data-dir", str(data_dir), "--train-dir", train_dir, *extra]


def parent_pids() -> dict[int, int]:
    """pid -> parent pid of every process."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return parents


def worker_pids(launcher_pid: int) -> list[int]:
    """The launcher's worker processes: forks of its fork server, which is the launcher's child."""
    parents = parent_pids()
    return sorted(pid for pid, ppid in parents.items() if parents.get(ppid) == launcher_pid)


def wait_for_workers(proc: subprocess.Popen, log_path: Path, count: int, timeout: float = 120) -> list[int]:
    """The pids of the launcher's `count` workers once each has logged its first training line."""
    deadline = time.monotonic() + timeout  # generous: CI machines are shared
    while log_path.read_text().count("trainflow.training.loop: training steps") < count:
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    return worker_pids(proc.pid)


@pytest.mark.slow
def test_two_workers_train_to_a_local_dir_with_checkpoints_events_and_metrics(mnist_dir: Path, tmp_path: Path) -> None:
    train_dir = tmp_path / "unfinished" / "myjob"
    out = trainflow(
        *train_args(
            mnist_dir,
            str(train_dir),
            "--workers",
            "2",
            "--train-steps",
            "40",
            "--checkpoint-every",
            "20",
            "--log-every",
            "10",
        )
    )
    assert out.returncode == 0, out.stderr
    metrics = json.loads((train_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 40 and metrics["world_size"] == 2 and metrics["accuracy"] > 0.5
    assert {"accuracy", "loss", "examples_per_sec", "train_seconds"} <= metrics.keys()
    assert sorted(p.name for p in (train_dir / "checkpoints").iterdir()) == ["ckpt-000000020.pt", "ckpt-000000040.pt"]
    assert list((train_dir / "logs").glob("events.out.tfevents.*"))
    assert "step=10/40" in out.stderr and "step=40/40" in out.stderr and "[rank 1]" in out.stderr
    assert f"test accuracy {metrics['accuracy']:.4f}" in out.stdout


@pytest.mark.slow
def test_rerun_skips_a_corrupt_latest_checkpoint_and_resumes_from_the_one_before(
    mnist_dir: Path, tmp_path: Path
) -> None:
    train_dir = tmp_path / "train"
    first = trainflow(
        *train_args(mnist_dir, str(train_dir), "--train-steps", "20", "--checkpoint-every", "10", "--model", "mlp")
    )
    assert first.returncode == 0, first.stderr
    latest = train_dir / "checkpoints" / "ckpt-000000020.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    again = trainflow(
        *train_args(mnist_dir, str(train_dir), "--train-steps", "30", "--checkpoint-every", "10", "--model", "mlp")
    )
    assert again.returncode == 0, again.stderr
    assert "skipping corrupt checkpoint" in again.stderr and "ckpt-000000020.pt" in again.stderr
    assert "at step 10" in again.stderr
    metrics = json.loads((train_dir / "metrics.json").read_text())
    assert (metrics["global_step"], metrics["resumed_from_step"]) == (30, 10)


@pytest.mark.slow
def test_train_model_step_writes_checkpoints_events_and_metrics_to_s3(
    mnist_dir: Path, s3_bucket: str, tmp_path: Path
) -> None:
    train_dir = f"{s3_bucket}/unfinished/myjob"
    outputs = tmp_path / "outputs.json"
    out = trainflow(
        "step",
        "train-model",
        "--data-dir",
        str(mnist_dir),
        "--train-dir",
        train_dir,
        "--workers",
        "2",
        "--train-steps",
        "20",
        "--checkpoint-every",
        "10",
        "--model",
        "mlp",
        "--outputs",
        str(outputs),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(outputs.read_text())
    assert (
        result["global-step"] == 20
        and result["metrics-url"] == f"{train_dir}/metrics.json"
        and result["accuracy"] > 0.3
    )
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket.removeprefix("s3://"))["Contents"]]
    assert "unfinished/myjob/checkpoints/ckpt-000000020.pt" in keys
    assert "unfinished/myjob/metrics.json" in keys
    assert any(k.startswith("unfinished/myjob/logs/events.out.tfevents.") for k in keys)


@pytest.mark.slow
def test_killed_worker_resumes_from_checkpoint(mnist_dir: Path, tmp_path: Path) -> None:
    train_dir = tmp_path / "train"
    log_path = tmp_path / "train.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainflow",
                *train_args(
                    mnist_dir,
                    str(train_dir),
                    "--workers",
                    "2",
                    "--train-steps",
                    "160",
                    "--checkpoint-every",
                    "20",
                    "--log-every",
                    "20",
                ),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120  # generous: CI machines are shared
        while not (train_dir / "checkpoints" / "ckpt-000000040.pt").exists():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        victims = worker_pids(proc.pid)
        assert len(victims) == 2, log_path.read_text()
        os.kill(victims[-1], signal.SIGKILL)
        assert proc.wait(timeout=240) == 0, log_path.read_text()
    finally:
        stop(proc)
    text = log_path.read_text()
    resumed = [int(line.rsplit("at step ", 1)[1]) for line in text.splitlines() if "resumed from checkpoint" in line]
    assert resumed and min(resumed) >= 40, text
    assert json.loads((train_dir / "metrics.json").read_text())["global_step"] == 160


def start_training(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
    """`trainflow train ARGS` in the background, its stdout and stderr in one log file."""
    log_path = tmp_path / "train.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainflow", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or os.environ.copy(),
        )
    return proc, log_path


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


@pytest.mark.slow
def test_workers_killed_with_no_restarts_left_end_the_run_as_lost_to_their_signal(
    mnist_dir: Path, tmp_path: Path
) -> None:
    args = train_args(mnist_dir, str(tmp_path / "train"), "--workers", "2", "--train-steps", "100000", "--model", "mlp")
    proc, log_path = start_training(tmp_path, *args, "--max-restarts", "0")
    try:
        victims = wait_for_workers(proc, log_path, 2)
        assert len(set(victims)) == 2 and proc.pid not in victims, log_path.read_text()
        for pid in victims:
            os.kill(pid, signal.SIGSTOP)  # neither sees the other go and reports a lost peer instead
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        code = proc.wait(timeout=60)
    finally:
        stop(proc)
    text = log_path.read_text()
    assert code == TRANSIENT_EXIT_CODE, text
    assert len(error_lines(text)) == 1, text
    assert re.fullmatch(r"error: training was lost on rank [01]: signal 9", error_lines(text)[0]), text
    assert "[rank 0]" in text and "[rank 1]" in text


@contextlib.contextmanager
def stopped_at_end(proc: subprocess.Popen, workers: list[psutil.Process]) -> Iterator[None]:
    """The launcher and the workers found meanwhile are gone after the block, whatever it asserted."""
    try:
        yield
    finally:
        stop(proc)
        for worker in workers:
            with contextlib.suppress(psutil.Error):
                worker.kill()


def assert_no_worker_left(workers: list[psutil.Process], log_path: Path) -> None:
    _, running = psutil.wait_procs(workers, timeout=30)
    assert [p for p in running if p.status() != psutil.STATUS_ZOMBIE] == [], log_path.read_text()


@pytest.mark.slow
def test_a_training_step_stopped_as_a_process_group_leaves_no_worker_running(mnist_dir: Path, tmp_path: Path) -> None:
    log_path = tmp_path / "train.log"
    args = train_args(mnist_dir, str(tmp_path / "train"), "--workers", "2", "--train-steps", "100000", "--model", "mlp")
    with open(log_path, "w") as log:  # as the local runner starts a step: a session and process group of its own
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainflow", *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    workers: list[psutil.Process] = []
    with stopped_at_end(proc, workers):
        workers += [psutil.Process(pid) for pid in wait_for_workers(proc, log_path, 2)]
        os.killpg(proc.pid, signal.SIGTERM)  # as `trainflow stop` does: the launcher and its fork server at once
        assert proc.wait(timeout=60) != 0
        assert_no_worker_left(workers, log_path)


@pytest.mark.slow
def test_workers_whose_fork_server_died_are_stopped_when_the_run_ends(mnist_dir: Path, tmp_path: Path) -> None:
    args = train_args(mnist_dir, str(tmp_path / "train"), "--workers", "2", "--train-steps", "100000", "--model", "mlp")
    proc, log_path = start_training(tmp_path, *args, "--max-restarts", "0")
    workers: list[psutil.Process] = []
    with stopped_at_end(proc, workers):
        workers += [psutil.Process(pid) for pid in wait_for_workers(proc, log_path, 2)]
        server = psutil.Process(workers[0].ppid())
        assert server.ppid() == proc.pid, log_path.read_text()
        server.kill()  # it can no longer say whether its workers run: the run is lost, its workers stopped
        assert proc.wait(timeout=60) == TRANSIENT_EXIT_CODE, log_path.read_text()
        assert_no_worker_left(workers, log_path)


FAILS_ON_RANK_1 = """
import logging
import os
import time

from trainflow.training.models import mlp


class SlowShipper(logging.Handler):
    def emit(self, record):
        time.sleep(3)  # a handler sending logs away: the rank takes a while to say why it failed


def build(hidden_units, input_shape, num_classes):
    if os.environ.get("RANK") == "1":
        logging.getLogger().addHandler(SlowShipper(logging.ERROR))
        raise ValueError("rank 1 cannot build it")
    return mlp(hidden_units, input_shape, num_classes)
"""


@pytest.mark.slow
def test_a_permanent_failure_on_one_rank_fails_the_run_at_once_though_its_peer_was_lost_while_it_said_why(
    mnist_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "fails_on_rank_1.py").write_text(FAILS_ON_RANK_1)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = trainflow(
        *train_args(mnist_dir, str(tmp_path / "train"), "--workers", "2", "--model", "fails_on_rank_1:build"), env=env
    )
    assert out.returncode == PERMANENT_EXIT_CODE, out.stderr
    assert error_lines(out.stderr) == [
        "error: training failed on rank 1: --model 'fails_on_rank_1:build': the factory failed: "
        "ValueError: rank 1 cannot build it"
    ], out.stderr
    assert out.stderr.count("[rank 1] trainflow.training.worker:") == 1, out.stderr  # not restarted


TRAIN_SCRIPT = """
import sys

from trainflow.training import TrainConfig, train

print("training starts")
result = train(TrainConfig(sys.argv[1], sys.argv[2], train_steps=2, model="mlp", hidden_units=16), workers=2)
print("accuracy", result.metrics["accuracy"])
"""


@pytest.mark.slow
def test_a_script_calling_train_without_a_main_guard_trains_once(mnist_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "train_it.py"
    script.write_text(TRAIN_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), str(mnist_dir), str(tmp_path / "train")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("training starts") == 1 and out.stdout.count("accuracy") == 1, out.stdout + out.stderr


def test_model_that_does_not_import_fails_with_one_line_and_a_permanent_exit_code(
    mnist_dir: Path, tmp_path: Path
) -> None:
    out = trainflow(*train_args(mnist_dir, str(tmp_path / "train"), "--model", "no_such_module:build"))
    assert 1 <= out.returncode <= 127
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: --model 'no_such_module:build': cannot import module 'no_such_module' "
        "(No module named 'no_such_module'): install it or fix PYTHONPATH"
    ], out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "train").exists()


def test_missing_dataset_fails_before_any_worker_starts(tmp_path: Path) -> None:
    out = trainflow(*train_args(tmp_path / "empty", str(tmp_path / "train")))
    assert out.returncode == 2 and "empty (No such file or directory): sync the dataset first" in out.stderr
    assert "trainflow.training.worker" not in out.stderr


def test_missing_dataset_leaves_no_process_behind(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    env = {**os.environ, "TRAINFLOW_TEST_MARKER": marker}
    proc, log_path = start_training(tmp_path, *train_args(tmp_path / "empty", str(tmp_path / "train")), env=env)
    assert proc.wait(timeout=60) == 2, log_path.read_text()
    left = []  # e.g. a fork server still importing torch for workers that will never start
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"TRAINFLOW_TEST_MARKER={marker}".encode() in (entry / "environ").read_bytes():
                left.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    assert left == []


@pytest.mark.parametrize(("args", "env"), [(["--peer-timeout", "0"], {}), ([], {"TRAINFLOW_PEER_TIMEOUT": "-5"})])
def test_peer_timeout_that_is_not_positive_is_refused_before_any_worker_starts(
    args: list[str], env: dict[str, str], mnist_dir: Path, tmp_path: Path
) -> None:
    out = trainflow(*train_args(mnist_dir, str(tmp_path / "train"), *args), env={**os.environ, **env})
    assert out.returncode == 2, out.stderr
    value = args[1] if args else env["TRAINFLOW_PEER_TIMEOUT"]
    assert [line for line in out.stderr.splitlines() if line.startswith("error:")] == [
        f"error: --peer-timeout must be a finite number of seconds greater than 0 (e.g. 300), got {float(value)}"
    ]
    assert "trainflow.training.worker" not in out.stderr


@pytest.mark.slow
def test_tfjob_world_of_chief_two_workers_and_ps_trains_one_model(mnist_dir: Path, tmp_path: Path) -> None:
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(4)]
    cluster = {"chief": addresses[:1], "worker": addresses[1:3], "ps": addresses[3:]}
    train_dir = tmp_path / "train"
    tasks = [("chief", 0), ("worker", 0), ("worker", 1), ("ps", 0)]
    argv = [
        sys.executable,
        "-m",
        "trainflow",
        *train_args(mnist_dir, str(train_dir), "--train-steps", "20", "--model", "mlp", "--checkpoint-every", "10"),
    ]
    results = run_together(
        [
            (
                argv,
                {
                    **os.environ,
                    "TF_CONFIG": json.dumps(
                        {"cluster": cluster, "task": {"type": task_type, "index": index}, "environment": "cloud"}
                    ),
                },
            )
            for task_type, index in tasks
        ],
        tmp_path,
        timeout=150,
    )
    codes, outputs = [code for code, _ in results], [output for _, output in results]
    assert codes == [0, 0, 0, 0], "\n".join(outputs)
    assert "ps:0 does not train" in outputs[3]
    metrics = json.loads((train_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 3 and metrics["global_step"] == 20
    assert "test accuracy" in outputs[0] and "test accuracy" not in outputs[1]


@pytest.mark.slow
def test_pytorchjob_master_and_worker_pods_train_one_model(mnist_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    train_dir = tmp_path / "train"
    argv = [
        sys.executable,
        "-m",
        "trainflow",
        *train_args(mnist_dir, str(train_dir), "--train-steps", "20", "--model", "mlp", "--checkpoint-every", "10"),
    ]
    results = run_together(
        [
            (
                argv,
                {
                    **os.environ,
                    "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(port),
                    "WORLD_SIZE": "2",
                    "RANK": str(rank),
                    "PET_NNODES": "2",
                    "PET_NPROC_PER_NODE": "1",
                    "PET_NODE_RANK": str(rank),
                },
            )
            for rank in (0, 1)
        ],
        tmp_path,
        timeout=150,
    )
    codes, outputs = [code for code, _ in results], [output for _, output in results]
    assert codes == [0, 0], "\n".join(outputs)
    assert "node 1 of 2 (pytorchjob)" in outputs[1]
    assert json.loads((train_dir / "metrics.json").read_text())["world_size"] == 2
