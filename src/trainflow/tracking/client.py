"""The MLflow client, with short timeouts: tracking waits seconds for a server, never the minutes MLflow retries."""

from __future__ import annotations

import os
import re
from typing import Any

from trainflow.tracking.errors import TrackingError
from trainflow.tracking.uri import check_uri, redacted

# MLflow's defaults retry a request 7 times with growing back-off (minutes); a trainflow step must not wait that
# long on a server that is down. A user's own settings of these variables win.
_QUICK = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # a step's log says what trainflow logged, once
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter's value
_CREDENTIALS = re.compile(r"[^\s/@'\"]+@(?=[^\s/@'\"])")  # user:password@ anywhere in a client's message


def reason_of(exc: BaseException) -> str:
    """An exception's first line, short, with anything shaped like user:password@ taken out (clients quote URLs)."""
    text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    return _CREDENTIALS.sub("", text)


def quick_requests() -> None:
    for name, value in _QUICK.items():
        os.environ.setdefault(name, value)


def client(uri: str) -> Any:
    """An MlflowClient for `uri` (imports mlflow: only where tracking is on)."""
    quick_requests()
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def reachable(uri: str) -> None:
    """TrackingError (exit 2) when the server at `uri` does not answer: said before anything runs."""
    check_uri(uri)
    try:
        client(uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any failure to talk to the server is the same answer to the user
        raise TrackingError(
            f"cannot reach the MLflow tracking server at {redacted(uri)}: {reason_of(exc)}; start it, fix MLFLOW_TRACKING_URI, "
            "or unset it to run without tracking"
        ) from None


def experiment_id(mlflow_client: Any, name: str) -> str:
    """The experiment `name`'s id, created if there is none (by whichever process gets there first)."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(mlflow_client.create_experiment(name))
    except Exception:  # another step created it meanwhile: read it again
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


def trainflow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trainflow")
    except PackageNotFoundError:
        return "unknown"
