"""A training function that fails on one rank of a local torch.distributed world (`trainflow step train-function`)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch.distributed as dist
from commands import trainflow

from trainflow.errors import TRANSIENT_EXIT_CODE
from trainflow.pipelines.train_function import _cause, _lost_peer

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
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = trainflow(
        "step", "train-function", "fails_on_rank_1:fit", "--workers", "2", env=env, cwd=tmp_path, timeout=180
    )
    # 1: the function's own failure, which a retry policy leaves alone (a lost peer would be the transient code)
    assert out.returncode == 1, out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert errors and errors[-1] == "error: fails_on_rank_1:fit failed on rank 1: ValueError: rank 1 cannot fit", (
        out.stderr
    )


def failed(exitcode: int, timestamp: int) -> SimpleNamespace:
    """A rank's failure as the agent reports it (the fields the choice reads)."""
    return SimpleNamespace(exitcode=exitcode, timestamp=timestamp)


@pytest.mark.parametrize(
    ("failures", "blamed"),
    [
        ({0: failed(TRANSIENT_EXIT_CODE, 10), 1: failed(1, 12)}, 1),  # its own failure before the peer that lost it
        ({0: failed(-15, 10), 1: failed(2, 12)}, 1),  # stopped by the agent: not its own
        ({0: failed(TRANSIENT_EXIT_CODE, 10), 1: failed(-9, 12)}, 1),  # killed for memory, no error file
        ({0: failed(-11, 12), 1: failed(-15, 10)}, 0),  # a crash before the agent's SIGTERM
        ({0: failed(1, 12), 1: failed(1, 11)}, 1),  # both their own: the earlier
        ({0: failed(1, 11), 1: failed(1, 11)}, 0),  # and then the lower rank
    ],
)
def test_the_failure_reported_is_a_ranks_own_before_one_that_followed_it(
    failures: dict[int, SimpleNamespace], blamed: int
) -> None:
    assert _cause(failures)[0] == blamed  # type: ignore[arg-type]


def raised_in(filename: str, exc: BaseException) -> BaseException:
    """`exc` as raised by code in `filename`."""
    try:
        exec(compile("raise exc", filename, "exec"), {"exc": exc})
    except BaseException as caught:  # noqa: BLE001 - handed back to the test
        return caught
    raise AssertionError("not raised")


def test_a_lost_peer_is_torch_distributed_failing_to_reach_it_not_a_users_own_connection_error() -> None:
    torch_file = str(Path(dist.__file__).parent / "distributed_c10d.py")
    assert _lost_peer(raised_in(torch_file, RuntimeError("[pair.cc:553] Connection closed by peer [127.0.0.1]:1")))
    assert _lost_peer(raised_in("/home/u/fit.py", dist.DistNetworkError("Connection reset by peer")))
    assert not _lost_peer(raised_in("/home/u/fit.py", ConnectionRefusedError("the database is down")))
    assert not _lost_peer(raised_in("/home/u/fit.py", RuntimeError("DataLoader timed out after 5 seconds")))
    assert not _lost_peer(raised_in(torch_file, RuntimeError("Tensors must be contiguous")))
    assert not _lost_peer(None)
    wrapped = ValueError("the all-reduce failed")
    wrapped.__cause__ = raised_in(torch_file, RuntimeError("Connection closed by peer"))
    assert _lost_peer(wrapped)
