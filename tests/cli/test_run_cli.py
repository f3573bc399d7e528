"""`trainflow run` as a newcomer meets it: what it prints when something is wrong, and where it serves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port

from tests.commands import delete_all_workflows, trainflow


@pytest.fixture(autouse=True)
def delete_all_afterwards(trainflow_home: Path) -> Iterator[None]:
    yield
    delete_all_workflows(trainflow_home)


def test_unreachable_source_fails_with_one_line_saying_how_to_use_a_local_copy() -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/mnist/"  # nothing listens: as the public mirror offline
    out = trainflow("run", "--data-url", unreachable, "--job-name", "offline-1", "--steps", "1", "--no-serving")
    assert out.returncode == 1, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out.stderr
    assert "cannot reach" in errors[0] and unreachable in errors[0]
    assert "--s3-data-url DIR" in errors[0] and "-p s3-data-url=DIR" in errors[0], errors[0]
    assert "failed" not in out.stdout.split("Status:")[0]  # the failure is on stderr, not only on stdout
    info = json.loads(trainflow("get", "offline-1", "-o", "json").stdout)
    assert info["status"] == "Failed"

    # what the failure leaves: no TensorBoard (nothing was trained to show), and `get` says so
    assert "no running services" in trainflow("services").stdout
    board = next(s for s in info["steps"] if s["name"] == "tensorboard")
    assert board["message"].startswith("stopped"), board  # before training (or before it was ready)

    # `get` ends with the failed step's last lines; `logs` ends with the error, free of TensorBoard's chatter
    shown = trainflow("get", "offline-1").stdout.splitlines()
    assert all(line == line.rstrip() for line in shown), "piped output is not padded"
    message = next(line for line in shown if line.startswith("Message:"))
    assert message.endswith("with submit, retry or resubmit"), message  # whole, not wrapped
    assert "Last lines of download-dataset:" in shown and "--- attempts 1-3, alike: " in shown[-1], shown
    assert sum("cannot reach" in line for line in shown) == 1, shown  # in the Message, not again per attempt
    logs = trainflow("logs", "offline-1")
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert "cannot reach" in lines[-1] and "failed" in lines[-1], lines[-3:]
    assert not [line for line in lines if "load cycle" in line or "rustboard" in line or "werkzeug" in line], lines
    assert any(line.startswith("tensorboard: TensorBoard http://") for line in lines)
