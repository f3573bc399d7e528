"""The dashboard lists schedules with their last and next runs: /api/schedules over real HTTP, as `schedule list`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from servers import free_port, stop, wait_for_port

NAP = """\
name: nap
steps:
  - {name: nap, kind: command, argv: [python3, -c, "pass"], cache: false}
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trainflow", *args], capture_output=True, text=True, check=False)


def test_dashboard_lists_schedules_with_their_last_and_next_runs(tmp_path: Path, trainflow_home: Path) -> None:
    pipeline = tmp_path / "nap.yaml"
    pipeline.write_text(NAP)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "trainflow", "ui", "--port", str(port)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=server)
        url = f"http://127.0.0.1:{port}/api/schedules"
        assert httpx.get(url, timeout=30).json() == []
        assert run("schedule", "create", "often", str(pipeline), "--every", "5s").returncode == 0
        assert run("schedule", "create", "nightly", str(pipeline), "--cron", "0 3 * * *").returncode == 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not httpx.get(url, timeout=30).json()[1]["last_run"]:
            time.sleep(0.5)
        listed = {s["name"]: s for s in httpx.get(url, timeout=30).json()}
        printed = {s["name"]: s for s in json.loads(run("schedule", "list", "-o", "json").stdout)}
        assert listed.keys() == printed.keys() == {"often", "nightly"}
        often = listed["often"]
        assert often["last_run"].startswith("often-") and often["next_run_at"] > often["last_fired_at"]
        assert listed["nightly"]["last_run"] == "" and listed["nightly"]["schedule"] == "0 3 * * *"
        assert time.gmtime(listed["nightly"]["next_run_at"])[3:6] == (3, 0, 0)  # 03:00 UTC
        for name in ("nightly", "often"):
            assert {k: v for k, v in listed[name].items() if k not in ("last_run", "last_fired_at", "next_run_at")} == {
                k: v for k, v in printed[name].items() if k not in ("last_run", "last_fired_at", "next_run_at")
            }
    finally:
        for name in ("often", "nightly"):
            run("schedule", "delete", name)
        stop(server)
        run("delete", "--all")
