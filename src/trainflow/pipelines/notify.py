"""`Notify`: a ready-made exit step that posts a run's outcome to a webhook (Slack-compatible).

Listed in `Pipeline(on_exit=...)`, it runs after every other step and posts a JSON payload (the workflow, its
pipeline, status, duration, the failed step and its last log lines, metrics, the `trainflow get` command and a
Slack `text`) when the run's status is one of `on`. Delivery is retried and logged, never fails the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.programs import STEP
from trainflow.pipelines.refs import WorkflowRef
from trainflow.pipelines.steps import Step

STATUSES = ("Succeeded", "Failed", "Error")
RUN_BACKEND_ENV = "TRAINFLOW_RUN_BACKEND"  # set by a runner that can tell a notify step more (logs, metrics)
URL_ENV = "TRAINFLOW_NOTIFY_URL"  # where a pod finds the URL of a `url_secret` when `url_env` names none
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_PART = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?|[-._a-zA-Z0-9]+")


@dataclass(frozen=True, kw_only=True)
class Notify(Step):
    """Post the run's outcome to a webhook when its status is in `on` (an exit step: `Pipeline(on_exit=(Notify(...),))`).

    url: the webhook, written into the pipeline (so kept with the run and in compiled YAML: prefer the two below
      for a secret one).
    url_env: an environment variable holding the URL: locally the one `trainflow submit` ran with.
    url_secret: (secret name, key) of a Kubernetes Secret holding the URL, for runs on a cluster.
    on: the statuses that notify: Succeeded, Failed, Error (Argo's own for a step that could not run).
    log_lines: how many of the failed step's last log lines the payload carries (where the runner has them).
    """

    kind: ClassVar[str] = "notify"
    name: str = "notify"
    url: str = ""
    url_env: str = ""
    url_secret: tuple[str, str] | None = None
    on: tuple[str, ...] = ("Failed",)
    log_lines: int = 20
    cache: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "on", (self.on,) if isinstance(self.on, str) else tuple(self.on))
        if self.url_secret is not None:
            object.__setattr__(self, "url_secret", tuple(self.url_secret))
        super().__post_init__()
        self._check()

    def _check(self) -> None:
        where = f"step {self.name}"
        if not (self.url or self.url_env or self.url_secret):
            raise PipelineError(f"{where}: give the webhook as url=, url_env= (a variable) or url_secret=(NAME, KEY)")
        if self.url and "{{" in self.url:
            raise PipelineError(f"{where}: url is a literal URL: use url_env or url_secret for one that varies")
        if self.url_env and not _ENV_NAME.fullmatch(self.url_env):
            raise PipelineError(f"{where}: url_env '{self.url_env}' is not an environment variable name")
        secret = self.url_secret
        if secret is not None and not (len(secret) == 2 and all(_SECRET_PART.fullmatch(str(p)) for p in secret)):
            raise PipelineError(f"{where}: url_secret is (secret name, key), e.g. ('slack', 'webhook')")
        unknown = [s for s in self.on if s not in STATUSES]
        if not self.on or unknown:
            raise PipelineError(f"{where}: on {list(self.on)!r}: use some of {', '.join(STATUSES)}")
        if not isinstance(self.log_lines, int) or not 0 <= self.log_lines <= 1000:
            raise PipelineError(f"{where}: log_lines {self.log_lines!r}: give a whole number from 0 to 1000")

    @property
    def url_variable(self) -> str:
        """The environment variable the step reads its URL from (unless the URL is literal)."""
        return self.url_env or URL_ENV

    @property
    def cacheable(self) -> bool:
        return False

    @property
    def command(self) -> tuple[str, ...]:
        source = ("--url", self.url) if self.url else ("--url-env", self.url_variable)
        outcome = [(f"--{f.replace('_', '-')}", str(WorkflowRef(f))) for f in _FIELDS]
        return (
            *STEP,
            "notify",
            *source,
            *(t for status in self.on for t in ("--on", status)),
            "--log-lines",
            str(self.log_lines),
            *(t for pair in outcome for t in pair),
        )


_FIELDS = ("name", "pipeline", "status", "duration", "failed_step", "failure_message")
