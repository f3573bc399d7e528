"""`trainflow step notify`: the `Notify` exit step, posting the run's outcome to a webhook."""

from __future__ import annotations

import logging
import os

import click

from trainflow.pipelines.notify import RUN_BACKEND_ENV, STATUSES

log = logging.getLogger(__name__)


@click.command("notify")
@click.option("--url", default="", help="The webhook URL (prefer --url-env: a literal URL is kept with the run).")
@click.option("--url-env", default="", help="The environment variable holding the webhook URL.")
@click.option("--on", "on", multiple=True, type=click.Choice(STATUSES), help="A status that notifies; repeatable.")
@click.option("--log-lines", default=20, show_default=True, type=click.IntRange(0, 1000))
@click.option("--name", "workflow", required=True, help="The run's name.")
@click.option("--pipeline", default="", help="The run's pipeline.")
@click.option("--status", required=True, help="The run's status.")
@click.option("--duration", default="", help="The run's duration in seconds.")
@click.option("--failed-step", default="", help="The first step that failed.")
@click.option("--failure-message", default="", help="Its message.")
def notify_step(
    url: str,
    url_env: str,
    on: tuple[str, ...],
    log_lines: int,
    workflow: str,
    pipeline: str,
    status: str,
    duration: str,
    failed_step: str,
    failure_message: str,
) -> None:
    """Pipeline exit step: post the run's outcome to a webhook when its status is one of --on (never fails)."""
    from trainflow.workflows import notify

    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every request with its URL, the secret
    if on and status not in on:
        log.info("the run %s: nothing to send (notifies on %s)", status, ", ".join(on))
        return
    target = url or os.environ.get(url_env, "")
    if not target:
        log.error("no webhook URL: $%s is empty here (a url_secret is read on Kubernetes only)", url_env)
        return
    outcome = notify.Outcome(workflow, pipeline, status, _seconds(duration), failed_step, failure_message)
    backend = os.environ.get(RUN_BACKEND_ENV, "")
    if backend:
        from trainflow.settings import trainflow_home
        from trainflow.workflows.backends import Where, open_backend

        outcome = notify.with_details(outcome, open_backend(backend, Where(trainflow_home())), log_lines)
    notify.deliver(target, notify.payload(outcome))


def _seconds(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
