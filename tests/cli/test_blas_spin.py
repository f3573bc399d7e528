"""numpy's OpenBLAS threads in a trainflow process sleep at once instead of spinning ~0.1 s of CPU for work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from commands import trainflow

SEES = """
import os


def blas_setting():
    return {"timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "unset")}
"""


@pytest.mark.parametrize("given", [None, "12"])
def test_a_trainflow_process_and_its_steps_shorten_openblas_spin_unless_the_user_set_it(
    tmp_path: Path, given: str | None
) -> None:
    (tmp_path / "sees.py").write_text(SEES)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if given is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = given
    seen = given or os.environ.get("OPENBLAS_THREAD_TIMEOUT", "4")  # this test's own setting is the user's
    out = trainflow("step", "call", "sees:blas_setting", env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"'timeout': '{seen}'" in out.stdout, out.stdout
