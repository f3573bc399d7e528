"""Errors of the ui layer."""

from trainflow.errors import TrainflowError


class UiError(TrainflowError):
    """A dashboard request could not be answered; the message says what to send or start instead."""
