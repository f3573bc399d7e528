"""Step processes: start them in their own process group, recognise them later, stop them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psutil


def start(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `argv` detached from our terminal, in a new session, output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, close_fds=True,
        )


def trainflow_argv(command: Sequence[str]) -> list[str]:
    """A spec command (`trainflow ...`) run with this interpreter, whatever PATH holds."""
    if command and command[0] == "trainflow":
        return [sys.executable, "-m", "trainflow", *command[1:]]
    return list(command)


def started_at(pid: int) -> float | None:
    """The process's start time: with the pid it identifies a process even after pid reuse."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def alive(pid: int | None, started: float | None) -> bool:
    """True if `pid` is still the process that started at `started` (and is not a zombie)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if started is not None and abs(proc.create_time() - started) > 0.01:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_group(pid: int, started: float | None, grace: float = 10.0) -> None:
    """SIGTERM the process group led by `pid` (the step and all it started), SIGKILL after `grace` s."""
    if not alive(pid, started):
        return
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    members = _group(pgid)
    _signal_group(pgid, signal.SIGTERM)
    _, left = psutil.wait_procs(members, timeout=grace)
    if left:
        _signal_group(pgid, signal.SIGKILL)
        psutil.wait_procs(left, timeout=5)


def _group(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, psutil.Error, PermissionError):
            continue
    return members


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_exit(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and psutil.pid_exists(pid):
        time.sleep(0.05)
