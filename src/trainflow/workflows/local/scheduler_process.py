"""The local scheduler as a process: one per `$TRAINFLOW_HOME`, started on demand, found again by its pid file.

`trainflow scheduler` holds `scheduler.lock` while it lives (the kernel lets go of it when the process dies, even
killed with -9), so a second one started by a race exits at once. `scheduler.json` says which process it is.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from trainflow.storage import atomic_write_bytes
from trainflow.workflows.local import processes

INFO_FILE = "scheduler.json"
LOCK_FILE = "scheduler.lock"
LOG_FILE = "scheduler.log"
START_WAIT = 10.0  # seconds `ensure` waits for a new scheduler to say it is up


def running(home: Path) -> dict[str, Any] | None:
    """{pid, started, log} of the live scheduler of `home`; None when none runs."""
    try:
        found = json.loads((home / INFO_FILE).read_text())
        pid, started = int(found["pid"]), float(found["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not processes.alive(pid, started):
        return None
    return {"pid": pid, "started": started, "log": str(home / LOG_FILE)}


def ensure(home: Path) -> dict[str, Any] | None:
    """The scheduler of `home`, started if none runs (it exits by itself once no schedule is active)."""
    found = running(home)
    if found is not None:
        return found
    env = {**os.environ, "TRAINFLOW_HOME": str(home)}
    proc = processes.start([sys.executable, "-m", "trainflow", "scheduler"], home / LOG_FILE, env=env)
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        found = running(home)
        if found is not None or proc.poll() is not None:
            return found or running(home)
        time.sleep(0.05)
    return running(home)


def announce(home: Path) -> None:
    """Called by the scheduler once it holds the lock: this process is the one `running` finds."""
    pid = os.getpid()
    atomic_write_bytes(home / INFO_FILE, json.dumps({"pid": pid, "started": processes.started_at(pid)}).encode())
