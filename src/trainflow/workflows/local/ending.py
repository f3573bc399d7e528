"""How a local run ends: its outcome (what exit steps read as `{{workflow.status}}` and the rest), and its services
after a failure.

Exit steps (`Pipeline(on_exit=...)`) run after every other step has ended: after success, after a failure, and after
`trainflow stop` (within the stop's grace period). The run's status is the one its steps gave it; an exit step
that fails shows Failed in its own row and does not change it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainflow.pipelines import Pipeline
from trainflow.tracking import PARENT_ENV, RUN_RECORD, URI_ENV, tracking_uri
from trainflow.workflows.backend import FAILED, OMITTED, PENDING, SKIPPED, SUCCEEDED
from trainflow.workflows.local import processes
from trainflow.workflows.local.state import StateStore, load_pipeline

if TYPE_CHECKING:
    from trainflow.tracking.workflow_run import WorkflowStart


@dataclass(frozen=True)
class Outcome:
    """What the run's steps came to, before its exit steps run."""

    status: str
    message: str = ""
    failed_step: str = ""
    failure_message: str = ""

    def values(self, workflow: str, pipeline: str, started: float | None) -> dict[str, str]:
        """The `{{workflow.*}}` values an exit step reads."""
        duration = time.time() - started if started else 0.0
        return {
            "name": workflow,
            "pipeline": pipeline,
            "status": self.status,
            "duration": f"{duration:.3f}",
            "failed_step": self.failed_step,
            "failure_message": self.failure_message,
        }


def outcome(state: StateStore, workflow: str, failed: Sequence[str], stopping: bool) -> Outcome:
    """The run's status and message from its main steps (`failed`: its failed instances, in order)."""
    first = next((s for s in state.get(workflow).steps if s.name == failed[0]), None) if failed else None
    failed_step, failure = (first.name, first.message) if first else ("", "")
    if stopping:
        return Outcome(FAILED, "stopped by user", failed_step, failure or "stopped by user")
    if first is not None:
        joint = " " if first.message.startswith("after ") else ": "  # "failed after 3 attempts: ..."
        return Outcome(FAILED, f"step {first.name} failed{joint}{first.message}", failed_step, failure)
    return Outcome(SUCCEEDED)


def settle_services(
    state: StateStore,
    workflow: str,
    pipeline: Pipeline,
    status: Mapping[str, str],
    instances: Mapping[str, list[str]],
) -> None:
    """After a failure: a run that never trained stops its services (they would show or serve nothing of it).

    Once a training step has run, they stay up to show it (TensorBoard's curves of a diverged run); each
    service's message says which.
    """
    trained = any(
        status.get(i) not in (PENDING, OMITTED, SKIPPED)
        for step in pipeline.steps
        if step.kind == "train"
        for i in instances[step.name]
    )
    for instance, pid, started, service in state.step_processes(workflow):
        if not service or status.get(instance) != SUCCEEDED:
            continue
        if trained:
            state.update_step(workflow, instance, message="service running: kept to show the failed run")
            continue
        processes.stop_group(pid, started)
        state.update_step(
            workflow,
            instance,
            status=SUCCEEDED,
            pid=None,
            message=f"stopped: the workflow failed before training (`trainflow retry {workflow}` starts it again)",
        )


@contextmanager
def tracked(workflow_dir: Path, state: StateStore) -> Iterator[Callable[[str, bool], None]]:
    """While the runner runs the workflow: its MLflow run (nothing, and no import of mlflow, when tracking is off).

    The runner calls back with its outcome before it records it: the run ends FINISHED when the workflow succeeded,
    KILLED when a user stopped it, FAILED otherwise (and when the runner itself fails). `trainflow retry` reopens it
    on the server it was opened on, with or without MLFLOW_TRACKING_URI in the retrying shell; a retry whose own
    tracking-uri parameter names another server gets a new run there.
    """
    if not tracking_uri() and not (workflow_dir / RUN_RECORD).exists():
        yield lambda status, stopped: None
        return
    from trainflow.tracking.workflow_run import runner_run  # loads mlflow: only with tracking on

    run = runner_run(
        workflow_dir / RUN_RECORD, None if os.environ.get(PARENT_ENV) else _again(state, workflow_dir.name)
    )
    ended: list[str] = []

    def end(status: str, stopped: bool) -> None:
        ended.append("KILLED" if stopped else "FINISHED" if status == SUCCEEDED else "FAILED")
        if run is not None:
            run.end(ended[-1])

    try:
        yield end
    finally:
        if run is not None and not ended:
            run.end("FAILED")


def _again(state: StateStore, name: str) -> WorkflowStart:
    """The run as a retry's runner starts it again: its values, and the server its own tracking-uri parameter names."""
    from trainflow.pipelines.roles import param_types
    from trainflow.tracking.workflow_run import WorkflowStart
    from trainflow.workflows.tracking_settings import tracking_variables

    info = state.get(name)
    pipeline, _, _ = load_pipeline(state, name, info.pipeline)
    named = tracking_variables(param_types(pipeline), info.params).get(URI_ENV, "")
    return WorkflowStart(info.pipeline, name, "local", dict(info.params), named)


def end_abandoned(workflow_dir: Path) -> None:
    """A runner that died (SIGKILL) never ended the workflow's MLflow run: it and its step runs still RUNNING end
    KILLED (nothing, and no import of mlflow, for a run that was not tracked)."""
    if not (workflow_dir / RUN_RECORD).exists():
        return
    from trainflow.tracking.workflow_run import recorded_run

    run = recorded_run(workflow_dir / RUN_RECORD)
    if run is not None:
        run.end_abandoned()
