"""What the kubernetes backend cannot do is one line saying what to run instead (no cluster needed to say so)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def trainflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainflow", *args], capture_output=True, text=True, env=os.environ.copy(), timeout=60
    )


@pytest.mark.parametrize(
    ("args", "instead"),
    [
        (("retry", "myjob"), "argo retry myjob -n ml"),
    ],
)
def test_an_operation_the_cluster_backend_cannot_do_says_what_to_run(args: tuple[str, ...], instead: str) -> None:
    out = trainflow(*args, "--backend", "kubernetes", "-n", "ml")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("error: the kubernetes backend") and instead in out.stderr
