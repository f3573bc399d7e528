"""What every backend returns and the small interface they share (submit, get, list, logs, delete)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from trainflow.workflows.spec import Pipeline

PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, OMITTED = "Pending", "Running", "Succeeded", "Failed", "Skipped", "Omitted"
FINISHED = (SUCCEEDED, FAILED, SKIPPED, OMITTED)


@dataclass
class StepInfo:
    name: str
    status: str = PENDING
    started_at: float | None = None
    finished_at: float | None = None
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    service: bool = False


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
    """Where workflows run; the CLI talks to this and nothing else."""

    name: str

    def submit(self, pipeline: Pipeline, values: Mapping[str, str]) -> WorkflowInfo: ...

    def get(self, name: str) -> WorkflowInfo: ...

    def list(self) -> list[WorkflowInfo]: ...

    def logs(self, name: str, step: str | None = None, follow: bool = False) -> Iterator[str]: ...

    def delete(self, name: str) -> None: ...
