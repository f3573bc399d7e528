"""Step processes: start them in their own process group, recognise them later, stop them."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

# Set in a runner's environment to its workflow's directory: every process of the workflow (runner, steps,
# what they start) inherits it, so `delete` finds them all, even ones no record points to.
WORKFLOW_ENV = "TRAINFLOW_WORKFLOW"
SUSPEND_SIGNAL = signal.SIGWINCH  # tells a runner to read its workflow's status again; ignored by default, never fatal


def start(
    argv: Sequence[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` detached from our terminal, in a new session, output appended to `log_path` (in `cwd`: ours)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
            pass_fds=tuple(pass_fds),
            cwd=cwd,
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


def stop_group(pid: int | None, started: float | None, grace: float = 10.0) -> None:
    """SIGTERM the process group led by `pid` (the step and all it started), SIGKILL after `grace` s."""
    if pid is None or not alive(pid, started):
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


def workflow_processes(workflow_dir: Path, name: str, home: Path) -> list[psutil.Process]:
    """Every live process of a workflow: marked by its environment, or (older runs) by its command line."""
    marker, prefix = str(workflow_dir), f"{workflow_dir}/"
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"], ad_value=None):
        env, cmdline = proc.info["environ"], proc.info["cmdline"] or []
        if env is None or proc.pid == os.getpid():  # not ours to stop, or gone
            continue
        runner = cmdline[-2:] == ["workflow-runner", name] and env.get("TRAINFLOW_HOME") == str(home)
        step = any(a == "--outputs" and b.startswith(prefix) for a, b in itertools.pairwise(cmdline))
        if env.get(WORKFLOW_ENV) == marker or runner or step:
            found.append(proc)
    return found


def stop_all(procs: list[psutil.Process], grace: float = 10.0) -> None:
    """SIGTERM `procs` and their process groups (never our own), SIGKILL what is left after `grace` s."""
    groups = set()
    for proc in procs:
        try:
            groups.add(os.getpgid(proc.pid))
        except ProcessLookupError:
            continue
    groups.discard(os.getpgrp())
    members = list({p.pid: p for p in [*procs, *(m for g in groups for m in _group(g))]}.values())
    for sig, timeout in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pgid in groups:
            _signal_group(pgid, sig)
        for proc in members:
            try:
                proc.send_signal(sig)
            except psutil.Error:
                continue
        members = _wait_gone(members, timeout)
        if not members:
            return


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` s for `procs` to end (a zombie has ended); returns those still running."""
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in procs if _running(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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
