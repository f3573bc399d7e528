"""Errors of the storage layer."""

from trainflow.errors import TRANSIENT_EXIT_CODE, TrainflowError


class StorageError(TrainflowError):
    """An object store refused or failed a request; the message names the URL and the fix."""


class ObjectNotFound(StorageError):
    """The URL names nothing that exists."""


class ObjectExists(StorageError):
    """The name is taken: publishing under it would overwrite what is there."""


class SourceUnreachable(StorageError):
    """The endpoint did not answer, even after retries: a network fault, worth retrying later."""

    exit_code = TRANSIENT_EXIT_CODE
