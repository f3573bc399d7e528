"""Errors of the export layer."""

from trainflow.errors import TrainflowError


class ExportError(TrainflowError):
    """A model could not be exported or published; the message says what failed and what to do."""
