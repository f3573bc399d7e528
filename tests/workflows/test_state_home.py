"""A TRAINFLOW_HOME that cannot hold the state database is one line naming it, for every command that reads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("command", [["list"], ["doctor"]])
def test_a_home_under_a_file_is_one_line_naming_it(tmp_path: Path, command: list[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    home = blocker / "home"
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", *command],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TRAINFLOW_HOME": str(home)},
    )
    assert "Traceback" not in out.stderr, out.stderr
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert out.returncode != 0
    assert any(str(home) in line and "TRAINFLOW_HOME" in line for line in lines), lines
