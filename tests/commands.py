"""Running `trainflow` as a user does: its own process, this interpreter, the test's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def trainflow(
    *args: str, timeout: float = 300, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`trainflow ARGS...` with `env` over the test's environment, its output captured as text; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "trainflow", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 60,
    every: float = 0.3,
    *,
    alive: subprocess.Popen[str] | None = None,
    tolerate: tuple[type[BaseException], ...] = (),
) -> T:
    """Call `predicate` every `every` s until it returns something true, and return that; fail after `timeout` s.

    `alive`: fail at once, with its output, when that process has exited. `tolerate`: errors that count as "not yet"
    (a server still starting refuses connections).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            output = alive.stdout.read() if alive.stdout else ""
            raise AssertionError(f"the process exited with {alive.returncode} while waiting\n{output}")
        value: T | None
        try:
            value = predicate()
        except tolerate:
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def delete_all_workflows(home: Path) -> None:
    """`trainflow delete --all` (stops every workflow's steps and services), skipped where `home` records none.

    The command costs an interpreter and the CLI's imports (4-8 s on the loaded test machine), and a test that was
    refused before anything ran has nothing to stop; `delete --all` deletes exactly what the state lists.
    """
    from trainflow.workflows.local.layout import Layout
    from trainflow.workflows.local.state import StateStore

    db = Layout(home).db
    if db.exists() and StateStore(db).names():
        trainflow("delete", "--all")


def get_workflow(name: str) -> dict[str, Any]:
    """`trainflow get NAME -o json`, parsed; the test fails here if the command does."""
    out = trainflow("get", name, "-o", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def steps_by_name(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in info["steps"]}
