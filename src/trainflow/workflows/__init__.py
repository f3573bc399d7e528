"""workflows: the pipeline spec (steps, params, DAG) and the runners that execute it."""

from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.params import parse_assignments, resolve_params
from trainflow.workflows.spec import MODEL_DEPLOY, MODEL_TRAIN, PIPELINES, OutputRef, ParamRef, Pipeline, PortRef, Step, render_args

__all__ = [
    "MODEL_DEPLOY",
    "MODEL_TRAIN",
    "PIPELINES",
    "OutputRef",
    "ParamRef",
    "Pipeline",
    "PortRef",
    "Step",
    "WorkflowError",
    "parse_assignments",
    "render_args",
    "resolve_params",
]
