"""A run's outcome posted to a webhook (the `Notify` exit step's work): the payload, and its delivery.

Delivery is retried a few times with a growing pause, logged, and never raises: a notification that cannot be
delivered does not change the run's status. The URL is never logged (a Slack webhook's path is its secret).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from trainflow.workflows.backend import Backend
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.runs import summarize

log = logging.getLogger(__name__)
ATTEMPTS = 4
TIMEOUT = 10.0
_MARKS = {"Succeeded": ":white_check_mark:", "Failed": ":x:", "Error": ":x:"}


@dataclass
class Outcome:
    """What an exit step knows of the run it ends."""

    workflow: str
    pipeline: str
    status: str
    duration: float | None = None
    failed_step: str = ""
    failure_message: str = ""
    log_lines: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


def with_details(outcome: Outcome, backend: Backend, lines: int) -> Outcome:
    """`outcome` with the failed step's last log lines and the run's metrics, as far as `backend` has them."""
    try:
        info = backend.get(outcome.workflow)
        outcome.metrics = summarize(info).metrics
        if outcome.failed_step and lines:
            tail = deque(backend.logs(outcome.workflow, outcome.failed_step), maxlen=lines)
            prefix = f"{outcome.failed_step}: "
            outcome.log_lines = [line.removeprefix(prefix) for line in tail]
    except WorkflowError as exc:
        log.warning("notification without logs and metrics: %s", exc.message)
    return outcome


def payload(outcome: Outcome) -> dict[str, Any]:
    """The JSON body: the outcome's fields, the command that shows the run, and a Slack-compatible `text`."""
    command = f"trainflow get {outcome.workflow}"
    took = f" after {outcome.duration:.0f} s" if outcome.duration is not None else ""
    text = f"{_MARKS.get(outcome.status, '')} {outcome.pipeline} run {outcome.workflow} {outcome.status}{took}".strip()
    if outcome.failed_step:
        text += f"\nstep {outcome.failed_step} failed: {outcome.failure_message}"
    if outcome.log_lines:
        text += "\n```\n" + "\n".join(outcome.log_lines[-10:]) + "\n```"
    text += f"\n`{command}`"
    return {
        "workflow": outcome.workflow,
        "pipeline": outcome.pipeline,
        "status": outcome.status,
        "duration": outcome.duration,
        "failed_step": outcome.failed_step or None,
        "failure_message": outcome.failure_message or None,
        "log_lines": outcome.log_lines,
        "metrics": outcome.metrics,
        "command": command,
        "text": text,
    }


def deliver(url: str, body: dict[str, Any], attempts: int = ATTEMPTS, backoff: float = 0.5) -> bool:
    """POST `body` as JSON to `url`, retrying failures (a connection error, a 5xx, 408 or 429); True once delivered."""
    import httpx  # here: most runs' notify step has nothing to send, and httpx costs a step's start-up twice over

    reason = ""
    for attempt in range(1, attempts + 1):
        try:
            response = httpx.post(url, json=body, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            reason = type(exc).__name__  # its text may hold the URL
        else:
            if response.is_success:
                log.info("notification delivered (HTTP %d)", response.status_code)
                return True
            reason = f"HTTP {response.status_code}"
            if response.is_client_error and response.status_code not in (408, 429):
                break  # the same request would be refused again
        if attempt < attempts:
            pause = backoff * 2 ** (attempt - 1)
            log.warning("notification attempt %d of %d failed (%s); again in %g s", attempt, attempts, reason, pause)
            time.sleep(pause)
    log.error("notification not delivered (%s); the workflow keeps its status", reason)
    return False
