"""workflows: the runners (local, kubernetes) that execute pipelines written with `trainflow.pipelines`."""

# Names load on first use (PEP 562): the detached runner, started once per run, imports only what it runs.
from __future__ import annotations

from typing import TYPE_CHECKING

from trainflow.lazy_names import lazy_names

if TYPE_CHECKING:
    from trainflow.pipelines import Pipeline, Step
    from trainflow.pipelines.builtin import MODEL_DEPLOY, MODEL_TRAIN, PIPELINES
    from trainflow.workflows.errors import WorkflowError
    from trainflow.workflows.params import parse_assignments, resolve_params

_MODULES = {
    "MODEL_DEPLOY": "trainflow.pipelines.builtin",
    "MODEL_TRAIN": "trainflow.pipelines.builtin",
    "PIPELINES": "trainflow.pipelines.builtin",
    "Pipeline": "trainflow.pipelines",
    "Step": "trainflow.pipelines",
    "WorkflowError": "trainflow.workflows.errors",
    "parse_assignments": "trainflow.workflows.params",
    "resolve_params": "trainflow.workflows.params",
}

__all__ = [
    "MODEL_DEPLOY",
    "MODEL_TRAIN",
    "PIPELINES",
    "Pipeline",
    "Step",
    "WorkflowError",
    "parse_assignments",
    "resolve_params",
]

__getattr__, __dir__ = lazy_names(__name__, _MODULES)
