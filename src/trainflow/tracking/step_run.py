"""One step's MLflow run, nested under its workflow's: what a training or export step logs, never failing the step.

Every call to the server here is best effort: a server that is down or slow costs a warning in the
step's log (once per kind of call), never the step. The run's id goes into MLflow's `MLFLOW_RUN_ID`, so
the step's workers and a user's function log into it with the plain `mlflow` API.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from trainflow.tracking import EXPERIMENT_ENV, PARENT_ENV, RUN_ENV, tracking_uri
from trainflow.tracking.client import MAX_PARAM_CHARS, client, experiment_id, reason_of, redacted, trainflow_version
from trainflow.tracking.cluster_run import parent_run, renest, workflow_uid

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_EXPERIMENT = "trainflow"
PROGRESS_SUFFIX = ".progress.jsonl"  # the local runner names a step instance's progress file <instance>.progress.jsonl


def step_log() -> Path | None:
    """The step's log file, where the local runner writes one beside its progress file (<instance>.log)."""
    progress = Path(os.environ.get("TRAINFLOW_PROGRESS", ""))
    if not progress.name.endswith(PROGRESS_SUFFIX):
        return None
    log_file = progress.with_name(progress.name.removesuffix(PROGRESS_SUFFIX) + ".log")
    return log_file if log_file.is_file() else None


def upload_log(run: StepRun) -> None:
    """The step's log as the artifact logs/<instance>.log of its run, as far as it is written (output flushed first)."""
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    found = step_log()
    if found is not None:
        run.log_artifact(found, "logs")


def step_instance(default: str) -> str:
    """This step's instance name (a fan-out item's own, e.g. train-model(lr=0.1)), as the runner named it."""
    progress = Path(os.environ.get("TRAINFLOW_PROGRESS", ""))
    name = progress.name
    return name.removesuffix(PROGRESS_SUFFIX) if name.endswith(PROGRESS_SUFFIX) else default


@dataclass
class StepRun:
    """An open step run: log to it; each kind of failure is warned about once and otherwise ignored."""

    uri: str
    run_id: str
    workflow: str = ""  # the workflow run's name, '' for a step run outside a workflow
    found_by_uid: str = ""  # the workflow run a compiled workflow's pod found by its uid (checked again at the end)
    failed: set[str] = field(default_factory=set)

    def _try(self, what: str, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - tracking never fails the step: the warning says what was lost
            if what not in self.failed:
                self.failed.add(what)
                reason = reason_of(exc)
                log.warning(
                    "MLflow at %s: could not log %s for run %s: %s", redacted(self.uri), what, self.run_id, reason
                )
            return None

    def log_params(self, params: Mapping[str, object]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in sorted(params.items()) if v is not None]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 parameters a batch
            self._try("parameters", partial(client(self.uri).log_batch, self.run_id, params=items[start : start + 100]))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        ms = int(time.time() * 1000)
        batch = [Metric(k, float(v), ms, step) for k, v in sorted(metrics.items()) if isinstance(v, int | float)]
        self._try("final metrics", lambda: client(self.uri).log_batch(self.run_id, metrics=batch))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        batch = [RunTag(k, str(v)) for k, v in tags.items()]
        self._try("tags", lambda: client(self.uri).log_batch(self.run_id, tags=batch))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._try(path.name, lambda: client(self.uri).log_artifact(self.run_id, str(path), artifact_path))

    def log_text(self, text: str, name: str) -> None:
        self._try(name, lambda: client(self.uri).log_text(self.run_id, text, name))

    def log_dataset(self, name: str, source: str, digest: str, schema: dict[str, Any], profile: dict[str, Any]) -> None:
        """The dataset as an MLflow dataset input: name, source URL, digest, schema (shape, classes) and counts."""
        self._try("the dataset", lambda: _log_dataset(self, name, source, digest, schema, profile))

    def log_model(
        self, model_dir: Path, example: Any, register: str = "", alias: str = "", tags: Mapping[str, str] | None = None
    ) -> str | None:
        """The exported version (ONNX, signature.json) as an MLflow model; registered as a new version of `register`
        with `tags` (and `alias` moved to it) when given. Returns the registered version, if any."""
        from trainflow.tracking.models import log_onnx_model

        return self._try(
            "the model", lambda: log_onnx_model(self, model_dir, example, register, alias, dict(tags or {}))
        )


def _log_dataset(
    run: StepRun, name: str, source: str, digest: str, schema: dict[str, Any], profile: dict[str, Any]
) -> None:
    import numpy as np
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.types import Schema, TensorSpec

    spec = TensorSpec(np.dtype(schema["dtype"]), (-1, *schema["input_shape"]), "input")
    meta: Any = MetaDataset  # typed abstract, but complete: its profile is None
    described = meta(source=HTTPDatasetSource(source), name=name, digest=digest[:36], schema=Schema([spec])).to_dict()
    entity = Dataset(
        name=described["name"],
        digest=digest[:36] or described["digest"],  # the descriptor's own; MetaDataset hashes its metadata
        source_type=described["source_type"],
        source=described["source"],
        schema=json.dumps({**json.loads(described.get("schema") or "{}"), "trainflow": schema}),
        profile=json.dumps(profile),
    )
    client(run.uri).log_inputs(
        run.run_id, datasets=[DatasetInput(entity, [InputTag("mlflow.data.context", "training")])]
    )


def _open(uri: str, step: str, kind: str) -> StepRun:
    c = client(uri)
    parent, by_uid = os.environ.get(PARENT_ENV, "").strip(), ""
    if not parent and workflow_uid():  # a compiled workflow's pod: its workflow's run is found by the uid
        parent = by_uid = parent_run(c, workflow_uid())
    if parent:
        experiment = str(c.get_run(parent).info.experiment_id)
    else:
        experiment = experiment_id(c, os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT)
    tags = {
        "trainflow.step": step,
        "trainflow.kind": kind,
        "trainflow.backend": os.environ.get(
            "TRAINFLOW_RUN_BACKEND", "kubernetes" if os.environ.get("KUBERNETES_SERVICE_HOST") else "local"
        ),
        "trainflow.version": trainflow_version(),
        **({"mlflow.parentRunId": parent} if parent else {}),
    }
    if parent:
        parent_tags = c.get_run(parent).data.tags
        tags.update({k: v for k, v in parent_tags.items() if k in ("trainflow.workflow", "trainflow.pipeline")})
    run_id = str(c.create_run(experiment, run_name=step, tags=tags).info.run_id)
    return StepRun(uri, run_id, tags.get("trainflow.workflow", ""), found_by_uid=by_uid)


@contextmanager
def step_run(step: str, kind: str = "train") -> Iterator[StepRun | None]:
    """Open the step's nested run when tracking is on (None otherwise, or when the server cannot be reached)."""
    uri = tracking_uri()
    if not uri:
        yield None
        return
    instance = step_instance(step)
    try:
        run = _open(uri, instance, kind)
    except Exception as exc:  # noqa: BLE001 - tracking never fails the step
        reason = reason_of(exc)
        log.warning("MLflow at %s: no run for step %s (%s): this step is not tracked", redacted(uri), instance, reason)
        yield None
        return
    run_id = run.run_id
    previous = os.environ.get(RUN_ENV)
    os.environ[RUN_ENV] = run_id  # the workers this step starts, and a user's mlflow calls, log here
    active = run._try("the active run", lambda: _activate(uri, run_id))
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    finally:
        from trainflow.tracking.sink import close_sink

        if not close_sink(run_id):
            run.set_tags({"trainflow.tracking": "incomplete"})
        upload_log(run)
        if active is not None:
            run._try("the run's end", lambda: _deactivate(status))
        if run.found_by_uid:  # the run found at the start may have lost a race with a pod's still being stored
            run._try("the workflow's run", lambda: renest(client(uri), workflow_uid(), run_id, run.found_by_uid))
        run._try("the run's end", lambda: client(uri).set_terminated(run_id, status))
        if previous is None:
            os.environ.pop(RUN_ENV, None)
        else:
            os.environ[RUN_ENV] = previous


def _activate(uri: str, run_id: str) -> bool:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.start_run(run_id=run_id)
    return True


def _deactivate(status: str) -> None:
    import mlflow

    mlflow.end_run(status)
