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


def fit_early():
    if os.environ["RANK"] == "0":
        sys.exit(0)
    dist.barrier()  # rank 0 never comes
    return {"accuracy": 1.0}
"""


@pytest.mark.parametrize(
    ("code", "message"),
    [(3, "sys.exit(3)"), ("no data", "sys.exit('no data')"), (True, "sys.exit(True)"), (0.0, "sys.exit(0.0)")],
)
def test_sys_exit_with_a_code_fails_the_function_with_one_line(
    code: object, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def quits() -> None:
        sys.exit(code)  # type: ignore[arg-type]

    with pytest.raises(PipelineError) as failed:
        call_function(quits, {}, "m:quits")
    assert failed.value.message == message and failed.value.exit_code == 1
    assert "sys.exit(code)" in capsys.readouterr().err  # its traceback, where it exited


@pytest.mark.parametrize("code", [None, 0, False])
def test_sys_exit_without_a_code_is_a_return_without_outputs(code: int | None) -> None:
    def ends() -> None:
        sys.exit(code)

    assert call_function(ends, {}, "m:ends") == {}


def test_a_call_step_that_exits_with_a_code_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "exits.py").write_text(EXITS)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    out = trainflow("step", "call", "exits:quits", "--input", "code", "4", env=env, cwd=tmp_path)

    assert out.returncode == 1, out.stderr
    assert out.stderr.splitlines()[-1] == "error: sys.exit(4)"


def test_a_module_that_exits_on_import_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "leaves.py").write_text("import sys\nsys.exit(5)\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    out = trainflow("step", "call", "leaves:main", env=env, cwd=tmp_path)

    assert (
        out.returncode != 0
        and out.stderr.splitlines()[-1] == "error: cannot import leaves for leaves:main: sys.exit(5)"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("function", "said"),
    [
        ("fit", "exits:fit failed on rank 1: sys.exit(3)"),
        # sys.exit(0) is a return on one process, but a rank that leaves would keep its peers waiting (gloo: 30 min)
        ("fit_early", "exits:fit_early failed on rank 0: sys.exit(0)"),
    ],
)
def test_a_rank_that_exits_is_the_failure_reported_not_its_lost_peer(tmp_path: Path, function: str, said: str) -> None:
    (tmp_path / "exits.py").write_text(EXITS)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    out = trainflow("step", "train-function", f"exits:{function}", "--workers", "2", env=env, cwd=tmp_path, timeout=180)

    # 1: the function's own failure, which a retry policy leaves alone (its lost peer would be the transient code)
    assert out.returncode == 1, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors and errors[-1] == f"error: {said}", out.stderr
