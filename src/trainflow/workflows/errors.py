"""Errors of the workflows layer."""

from trainflow.errors import TrainflowError


class WorkflowError(TrainflowError):
    """A pipeline could not be validated, submitted, found or changed; the message says what to do."""
