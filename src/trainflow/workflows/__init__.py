"""workflows: the runners (local, kubernetes) that execute pipelines written with `trainflow.pipelines`."""

from trainflow.pipelines import Pipeline, Step
from trainflow.pipelines.builtin import MODEL_DEPLOY, MODEL_TRAIN, PIPELINES
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.params import parse_assignments, resolve_params

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
