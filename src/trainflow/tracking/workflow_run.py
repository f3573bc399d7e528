"""The workflow's MLflow run: opened as a run is submitted, its id handed to every step the runner starts."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trainflow.tracking import EXPERIMENT_ENV, PARENT_ENV, URI_ENV, tracking_uri
from trainflow.tracking.client import (
    MAX_PARAM_CHARS,
    check_uri,
    client,
    experiment_id,
    reachable,
    reason_of,
    redacted,
    trainflow_version,
)
from trainflow.tracking.errors import TrackingError

log = logging.getLogger(__name__)

REGISTER_PARAM = "register-model"  # the parameter that registers a step's exported model (needs a tracking server)
URI_PARAM = "mlflow-tracking-uri"  # the built-in pipelines' tracking-uri parameter (what --tracking-uri sets there)
_RUN_ID = re.compile(r"[0-9a-f]{32}")  # what MLflow's run ids look like: a record that is not one is ignored


def check_registry(params: Mapping[str, str], tracked_elsewhere: bool = False) -> None:
    """TrackingError (exit 2) before anything runs when a run registers a model with no tracking server to register it
    with (`tracked_elsewhere`: the run's pods get a server from a Secret)."""
    if params.get(REGISTER_PARAM, "").strip() and not tracking_uri() and not tracked_elsewhere:
        ways = f"{URI_ENV}=URI, --tracking-uri URI or -p {URI_PARAM}=URI" if URI_PARAM in params else f"{URI_ENV}=URI"
        raise TrackingError(
            f"-p {REGISTER_PARAM}={params[REGISTER_PARAM]} registers the model in MLflow, but tracking is off: "
            f"turn it on with {ways} (an MLflow server, e.g. http://127.0.0.1:5000), or drop -p {REGISTER_PARAM}"
        )


@contextmanager
def workflow_run(
    pipeline: str,
    name: str | None,
    backend: str,
    params: Mapping[str, str],
    tracked_elsewhere: bool = False,
    opened_here: bool = True,
) -> Iterator[str | None]:
    """While starting a run: open its MLflow run (experiment: MLFLOW_EXPERIMENT_NAME, else the pipeline's name) and
    put its id in the environment the runner inherits. TrackingError (exit 2) before anything starts when the
    server cannot be reached; nothing at all when tracking is off (`tracked_elsewhere`: the run's pods get a server
    from a Secret, so registering a model needs none here) or the run's own pods open it (not `opened_here`: a
    compiled workflow's, `cluster_run.py`)."""
    uri = tracking_uri()
    check_registry(params, tracked_elsewhere)
    if not uri or not opened_here:
        yield None
        return
    reachable(uri)
    run_id = open_run(uri, WorkflowStart(pipeline, name or pipeline, backend, dict(params)))
    previous = os.environ.get(PARENT_ENV)
    os.environ[PARENT_ENV] = run_id
    try:
        yield run_id
    except BaseException:
        client(uri).set_terminated(run_id, "FAILED")
        raise
    finally:
        if previous is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = previous


@dataclass(frozen=True)
class WorkflowStart:
    """What a workflow's run is opened with: its pipeline, name, backend and parameters (plain values)."""

    pipeline: str
    name: str
    backend: str
    params: dict[str, str]
    tracking_param: str = ""  # the tracking server the run's own parameter names ('' when it names none)


def open_run(uri: str, start: WorkflowStart, tags: Mapping[str, str] | None = None) -> str:
    """Create the workflow's run on `uri` (experiment: MLFLOW_EXPERIMENT_NAME, else the pipeline's name) with its
    parameters and tags; its id."""
    from mlflow.entities import Param, RunTag

    c = client(uri)
    experiment = experiment_id(c, os.environ.get(EXPERIMENT_ENV) or start.pipeline)
    all_tags = {
        "trainflow.workflow": start.name,
        "trainflow.pipeline": start.pipeline,
        "trainflow.backend": start.backend,
        "trainflow.version": trainflow_version(),
        **(tags or {}),
    }
    run_id = str(c.create_run(experiment, run_name=start.name, tags=all_tags).info.run_id)
    values = [Param(k, redacted(str(v))[:MAX_PARAM_CHARS]) for k, v in sorted(start.params.items())]
    for first in range(0, len(values), 100):
        c.log_batch(run_id, params=values[first : first + 100], tags=[RunTag("trainflow.tracking", "on")])
    return run_id


@dataclass(frozen=True)
class RunnerRun:
    """The workflow's MLflow run as the local runner holds it: ended with the workflow's outcome."""

    uri: str
    run_id: str

    def end(self, status: str) -> None:
        """FINISHED, FAILED or KILLED: best effort (a server that is down costs one warning in the runner's log)."""
        try:
            client(self.uri).set_terminated(self.run_id, status)
        except Exception as exc:  # noqa: BLE001 - tracking never changes the workflow's outcome
            log.warning(
                "MLflow at %s: could not end run %s as %s: %s", redacted(self.uri), self.run_id, status, reason_of(exc)
            )

    def end_abandoned(self) -> None:
        """The runner died (SIGKILL, a reboot): this run and its step runs still RUNNING end KILLED."""
        try:
            c = client(self.uri)
            experiment = c.get_run(self.run_id).info.experiment_id
            nested = c.search_runs(
                [experiment], f"tags.`mlflow.parentRunId` = '{self.run_id}' and attributes.status = 'RUNNING'"
            )
        except Exception as exc:  # noqa: BLE001 - tracking never changes the workflow's outcome
            log.warning("MLflow at %s: could not read run %s: %s", redacted(self.uri), self.run_id, reason_of(exc))
            nested = []
        for run in nested:
            RunnerRun(self.uri, str(run.info.run_id)).end("KILLED")
        self.end("KILLED")


def record_run(record: Path, uri: str, run_id: str) -> None:
    """Keep the run's id and its server's URI (never credentials: a user name or password in it is left out)."""
    temporary = record.with_name(record.name + ".tmp")
    temporary.write_text(json.dumps({"run_id": run_id, "uri": redacted(uri)}) + "\n")
    temporary.replace(record)


def recorded_run(record: Path) -> RunnerRun | None:
    """The run `record_run` kept, on the server it was opened on (with this environment's credentials: MLflow reads
    MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN, and MLFLOW_TRACKING_URI when it names the same server with them); None
    without a record or with one that is not a run's."""
    try:
        kept = json.loads(record.read_text())
        run_id, uri = str(kept["run_id"]), str(kept["uri"])
        check_uri(uri)
    except (OSError, ValueError, TypeError, KeyError, TrackingError):
        return None
    if not _RUN_ID.fullmatch(run_id):
        return None
    here = tracking_uri()
    return RunnerRun(here if here and redacted(here) == uri else uri, run_id)


def runner_run(record: Path, again: WorkflowStart | None = None) -> RunnerRun | None:
    """In the runner as it starts: the workflow's run. A first start has its id from submit and records it in
    `record`; a retry's runner reads it back and reopens the run (RUNNING) on the server it was opened on, whatever
    the retrying shell's MLFLOW_TRACKING_URI, and hands it and that server to the steps again. A retry whose own
    parameter (`again.tracking_param`, e.g. `retry -p mlflow-tracking-uri=OTHER`) names another server opens a new
    workflow run there instead, tagged with the run it continues, and the retried steps nest under it."""
    uri = tracking_uri()
    run_id = os.environ.get(PARENT_ENV, "").strip()
    if run_id and uri:
        record_run(record, uri, run_id)
        return RunnerRun(uri, run_id)
    run = recorded_run(record)
    if again is not None and again.tracking_param and (run is None or run.uri != redacted(again.tracking_param)):
        return _moved_run(record, again, run)
    if run is None:
        return None  # submitted with tracking off: its steps' runs (if any) stand alone
    os.environ[PARENT_ENV] = run.run_id  # the steps this runner starts nest under it again
    os.environ[URI_ENV] = run.uri  # and log to the same server
    try:
        client(run.uri).update_run(run.run_id, status="RUNNING")
    except Exception as exc:  # noqa: BLE001 - tracking never stops a retry
        log.warning("MLflow at %s: could not reopen run %s: %s", redacted(run.uri), run.run_id, reason_of(exc))
    return run


def _moved_run(record: Path, again: WorkflowStart, before: RunnerRun | None) -> RunnerRun | None:
    """A new workflow run on the server the retry's parameter names (its credentials from this environment), recorded
    in place of `before`'s; None (steps' runs stand alone, one warning) when that server does not answer."""
    uri = tracking_uri() if redacted(tracking_uri()) == redacted(again.tracking_param) else again.tracking_param
    continues = {"trainflow.retry-of": f"{before.uri} {before.run_id}"} if before is not None else {}
    try:
        run_id = open_run(uri, again, continues)
    except Exception as exc:  # noqa: BLE001 - tracking never stops a retry
        log.warning("MLflow at %s: could not open the retried workflow's run: %s", redacted(uri), reason_of(exc))
        return None
    record_run(record, uri, run_id)
    os.environ[PARENT_ENV] = run_id  # the steps this runner starts nest under it
    os.environ[URI_ENV] = uri
    return RunnerRun(uri, run_id)
