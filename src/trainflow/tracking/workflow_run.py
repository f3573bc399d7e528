"""The workflow's MLflow run: opened as a run is submitted, its id handed to every step the runner starts."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from trainflow.tracking import EXPERIMENT_ENV, PARENT_ENV, tracking_uri
from trainflow.tracking.client import client, reachable, redacted
from trainflow.tracking.step_run import MAX_PARAM_CHARS, _experiment_id, trainflow_version


@contextmanager
def workflow_run(pipeline: str, name: str | None, backend: str, params: Mapping[str, str]) -> Iterator[str | None]:
    """While starting a run: open its MLflow run (experiment: MLFLOW_EXPERIMENT_NAME, else the pipeline's name) and
    put its id in the environment the runner inherits. TrackingError (exit 2) before anything starts when the
    server cannot be reached; nothing at all when tracking is off."""
    uri = tracking_uri()
    if not uri:
        yield None
        return
    reachable(uri)
    from mlflow.entities import Param, RunTag

    c = client(uri)
    experiment = _experiment_id(c, os.environ.get(EXPERIMENT_ENV) or pipeline)
    tags = {
        "trainflow.workflow": name or pipeline,
        "trainflow.pipeline": pipeline,
        "trainflow.backend": backend,
        "trainflow.version": trainflow_version(),
    }
    run_id = str(c.create_run(experiment, run_name=name or pipeline, tags=tags).info.run_id)
    values = [Param(k, redacted(str(v))[:MAX_PARAM_CHARS]) for k, v in sorted(params.items())]
    for start in range(0, len(values), 100):
        c.log_batch(run_id, params=values[start : start + 100], tags=[RunTag("trainflow.tracking", "on")])
    previous = os.environ.get(PARENT_ENV)
    os.environ[PARENT_ENV] = run_id
    try:
        yield run_id
    except BaseException:
        c.set_terminated(run_id, "FAILED")
        raise
    finally:
        if previous is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = previous
