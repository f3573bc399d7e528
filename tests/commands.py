"""Running `trainflow` as a user does: its own process, this interpreter, the test's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


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


def get_workflow(name: str) -> dict[str, Any]:
    """`trainflow get NAME -o json`, parsed; the test fails here if the command does."""
    out = trainflow("get", name, "-o", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def steps_by_name(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in info["steps"]}
