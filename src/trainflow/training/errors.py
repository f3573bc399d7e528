"""Errors of the training layer."""

from trainflow.errors import TrainflowError


class TrainingError(TrainflowError):
    """Training cannot start or did not finish; the message says what failed and what to do."""
