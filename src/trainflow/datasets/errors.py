"""Errors of the datasets layer."""

from trainflow.errors import TrainflowError


class DatasetError(TrainflowError):
    """A dataset is missing, malformed or cannot be cached; the message says what to do."""


class DataFormatError(DatasetError):
    """A synced dataset's content cannot be used (shapes, labels, images, columns); it is not kept."""
