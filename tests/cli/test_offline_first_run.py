"""The first run without a network: the unreachable URL is said once, with how many attempts were made."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.commands import trainflow


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_dataset_url_is_said_once_with_the_attempt_count(trainflow_home: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/mnist/"
    out = trainflow("run", "--steps", "5", "--s3-data-url", url, "--no-serving", timeout=240)
    assert out.returncode == 1, out.stderr
    # stdout: the run as `get` shows it; the error once, in its Message, with the step's three attempts
    assert out.stdout.count("cannot reach") == 1, out.stdout
    assert "Message:   step download-dataset failed after 3 attempts: cannot reach" in out.stdout
    assert "(the Message above)" in out.stdout
    # the step's log: its three attempts printed the same, so they show once
    assert "--- attempts 1-3, alike: " in out.stdout and "--- attempt 2" not in out.stdout
    # stderr: one error line that says what failed, then what to do
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "failed after 3 attempts: cannot reach" in errors[0], out.stderr
    assert out.stderr.count("cannot reach") == 1
