"""`sys.exit()` in a step's function: 0 or nothing ends it as a return would, any other code fails it with one line,
on one process (`trainflow step call`) and on the rank of a distributed world that called it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from commands import trainflow

from trainflow.pipelines.calling import call_function
from trainflow.pipelines.errors import PipelineError

EXITS = """
import os
import sys

import torch.distributed as dist


def quits(code: int = 3):
    sys.exit(code)


def ends():
    sys.exit()


def fit():
    if os.environ["RANK"] == "1":
        sys.exit(3)
    dist.barrier()  # rank 1 never comes: rank 0 learns it was lost
    return {"accuracy": 1.0}
"""


@pytest.mark.parametrize(("code", "message"), [(3, "SystemExit: 3"), ("no data", "SystemExit: no data")])
def test_sys_exit_with_a_code_fails_the_function_with_one_line(
    code: object, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def quits() -> None:
        sys.exit(code)  # type: ignore[arg-type]

    with pytest.raises(PipelineError) as failed:
        call_function(quits, {}, "m:quits")
    assert failed.value.message == message and failed.value.exit_code == 1
    assert "sys.exit(code)" in capsys.readouterr().err  # its traceback, where it exited


@pytest.mark.parametrize("code", [None, 0])
def test_sys_exit_without_a_code_is_a_return_without_outputs(code: int | None) -> None:
    def ends() -> None:
        sys.exit(code)

    assert call_function(ends, {}, "m:ends") == {}


def test_a_call_step_that_exits_with_a_code_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "exits.py").write_text(EXITS)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    out = trainflow("step", "call", "exits:quits", "--input", "code", "4", env=env, cwd=tmp_path)

    assert out.returncode == 1, out.stderr
    assert out.stderr.splitlines()[-1] == "error: SystemExit: 4"


@pytest.mark.slow
def test_a_rank_that_exits_with_a_code_is_the_failure_reported_not_its_lost_peer(tmp_path: Path) -> None:
    (tmp_path / "exits.py").write_text(EXITS)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    out = trainflow("step", "train-function", "exits:fit", "--workers", "2", env=env, cwd=tmp_path, timeout=180)

    # 1: the function's own failure, which a retry policy leaves alone (its lost peer would be the transient code)
    assert out.returncode == 1, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors and errors[-1] == "error: exits:fit failed on rank 1: SystemExit: 3", out.stderr
