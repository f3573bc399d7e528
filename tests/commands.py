"""Running `trainflow` as a user does: its own process, this interpreter, the test's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def trainflow(*args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`trainflow ARGS...`, its output captured as text; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "trainflow", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
