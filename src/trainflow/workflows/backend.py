"""What every backend returns and the small interface they share (submit, get, list, logs, delete)."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from trainflow.pipelines import Pipeline

PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, OMITTED = (
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "Skipped",
    "Omitted",
)
CACHED = "Cached"  # a step that did not run: an earlier run's outputs were reused (its message names that run)
FINISHED = (SUCCEEDED, FAILED, SKIPPED, OMITTED, CACHED)
DONE = (SUCCEEDED, CACHED)  # what a later step may start after


@dataclass
class StepInfo:
    name: str
    status: str = PENDING
    started_at: float | None = None
    finished_at: float | None = None
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    service: bool = False
    depends: list[str] = field(default_factory=list)  # the steps (instances) it runs after
    kind: str = ""  # the spec's step kind: command, call, train or service
    provides: dict[str, Any] = field(default_factory=dict)  # what the spec declares it provides (pipelines.roles)
    addresses: dict[str, str] = field(default_factory=dict)  # a service's port name -> host:port on this machine


@dataclass
class WorkflowInfo:
    name: str
    pipeline: str
    status: str
    params: dict[str, str]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    message: str = ""
    steps: list[StepInfo] = field(default_factory=list)
    backend: str = "local"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def step(self, name: str) -> StepInfo | None:
        return next((s for s in self.steps if s.name == name), None)


class Backend(Protocol):
    """Where workflows run; the CLI and the dashboard talk to this and nothing else.

    An operation a backend cannot do raises WorkflowError saying so and what to do instead.
    """

    name: str
    poll_seconds: float  # how often `--wait`/`--watch` read a running workflow back

    def submit(
        self,
        pipeline: Pipeline,
        values: Mapping[str, str],
        no_cache: bool = False,
        python_path: builtins.list[str] | None = None,
    ) -> WorkflowInfo:
        """Start a run; `python_path`: folders its steps' functions import from (a pipeline file's folder)."""
        ...

    def get(self, name: str) -> WorkflowInfo: ...

    def list(self) -> builtins.list[WorkflowInfo]: ...

    def logs(self, name: str, step: str | None = None, follow: bool = False) -> Iterator[str]: ...

    def delete(self, name: str) -> None: ...

    def stop(self, name: str) -> WorkflowInfo: ...

    def retry(self, name: str, values: Mapping[str, str] | None = None) -> WorkflowInfo:
        """Re-run a failed run from its failed steps; `values` override parameters (steps they reach run again)."""
        ...

    def resubmit(
        self, name: str, new_name: str | None = None, no_cache: bool = False, values: Mapping[str, str] | None = None
    ) -> WorkflowInfo:
        """Run a workflow again under a new name, with `values` overriding its parameters."""
        ...

    def services(self) -> builtins.list[tuple[WorkflowInfo, StepInfo]]: ...

    def progress(self, name: str, step: str) -> builtins.list[dict[str, Any]]:
        """The structured progress events a step reported (see trainflow.progress), oldest first."""
        ...
