"""numpy's OpenBLAS threads in a trainflow process sleep at once instead of spinning ~0.1 s of CPU for work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SEES = """
import os


def blas_setting():
    return {"timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "unset")}
"""


@pytest.mark.parametrize(("given", "seen"), [(None, "4"), ("12", "12")])
def test_a_trainflow_process_and_its_steps_shorten_openblas_spin_unless_the_user_set_it(
    tmp_path: Path, given: str | None, seen: str
) -> None:
    (tmp_path / "sees.py").write_text(SEES)
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env.get('PYTHONPATH', '')}"
    if given is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = given
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", "step", "call", "sees:blas_setting"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert f"'timeout': '{seen}'" in out.stdout, out.stdout
