"""Exit codes for the operators' ExitCode restart policy: 1-127 fails the job, >= 128 recreates the pod."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

from trainflow.errors import TRANSIENT_EXIT_CODE
from trainflow.training import TrainingError
from trainflow.training.launcher import _failure
from trainflow.training.worker import exit_code_for


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (TrainingError("bad --model"), False),
        (dist.DistNetworkError("Connection reset by peer"), True),
        (dist.DistStoreError("timed out waiting for key"), True),
        (RuntimeError("[gloo] Connection closed by peer [127.0.0.1]:4242"), True),
        (ConnectionRefusedError("refused"), True),
        (ValueError("a bug"), False),
    ],
)
def test_worker_failures_map_to_permanent_or_transient_codes(error: Exception, transient: bool) -> None:
    code = exit_code_for(error)
    assert (code >= 128) is transient and code >= 1


def failed_child(exitcode: int, tmp_path: Path, message: str | None = None) -> ChildFailedError:
    error_file = tmp_path / "error.json"
    if message is not None:
        error_file.write_text(json.dumps({"message": message, "timestamp": 1}))
    failure = ProcessFailure(local_rank=1, pid=4242, exitcode=exitcode, error_file=str(error_file))
    return ChildFailedError("trainflow.training.worker", {1: failure})


def test_worker_that_stopped_on_a_permanent_error_fails_the_job_with_its_line(tmp_path: Path) -> None:
    error = _failure(failed_child(2, tmp_path, "--data-dir /x has no train-images-idx3-ubyte.gz"), restarts=3)
    assert error.exit_code == 2
    assert str(error) == "training failed on rank 1 after 3 restarts: --data-dir /x has no train-images-idx3-ubyte.gz"


@pytest.mark.parametrize("exitcode", [-9, TRANSIENT_EXIT_CODE])
def test_workers_lost_to_signals_or_peers_are_transient(exitcode: int, tmp_path: Path) -> None:
    error = _failure(failed_child(exitcode, tmp_path), restarts=3)
    assert error.exit_code == TRANSIENT_EXIT_CODE and "was lost on rank 1" in str(error)
