"""The error a pipeline that cannot run as written raises (exit code 2: fix the pipeline, then submit again)."""

from trainflow.errors import TrainflowError


class PipelineError(TrainflowError):
    """A bad pipeline or parameter: the message names the file or step and the fix."""
