"""Settings read once at the edge: defaults < `TRAINFLOW_*` environment < explicit arguments."""

from __future__ import annotations

import logging
import os
from pathlib import Path


def trainflow_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The state directory: the argument, else `$TRAINFLOW_HOME`, else `~/.trainflow`; absolute, as the processes it is
    handed to (a run's steps, some started in a code package's folder) do not start where it was read."""
    if explicit:
        return Path(explicit).expanduser().absolute()
    env = os.environ.get("TRAINFLOW_HOME")
    if env:
        return Path(env).expanduser().absolute()
    return Path.home() / ".trainflow"


NOISY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "filelock")


def quiet_noisy_loggers() -> None:
    """Libraries that log every request at INFO: only their warnings reach trainflow's logs."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
