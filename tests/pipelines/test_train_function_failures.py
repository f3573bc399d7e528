"""A training function that fails on one rank of a local torch.distributed world (`trainflow step train-function`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FAILS_ON_RANK_1 = """
import os
import sys
import time

import torch.distributed as dist


class SlowFlush:
    def __init__(self, out):
        self.out = out

    def write(self, text):
        return self.out.write(text)

    def flush(self):
        time.sleep(3)  # a rank slow to end after it said why it failed (a log shipper, a loaded node)
        self.out.flush()


def fit():
    if os.environ["RANK"] == "1":
        sys.stdout = SlowFlush(sys.stdout)
        raise ValueError("rank 1 cannot fit")
    dist.barrier()  # waits on rank 1, and learns it was lost once rank 1 lets its connections go
    return {"accuracy": 1.0}
"""


@pytest.mark.slow
def test_a_function_failing_on_one_rank_ends_with_its_own_permanent_code_though_its_peer_was_lost_first(
    tmp_path: Path,
) -> None:
    (tmp_path / "fails_on_rank_1.py").write_text(FAILS_ON_RANK_1)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", "step", "train-function", "fails_on_rank_1:fit", "--workers", "2"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    # 1: the function's own failure, which a retry policy leaves alone (a lost peer would be the transient code)
    assert out.returncode == 1, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors[-1] == "error: fails_on_rank_1:fit failed on rank 1: ValueError: rank 1 cannot fit", out.stderr
