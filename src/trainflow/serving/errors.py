"""Errors of the serving layer: one root, and one subclass per answer a client can get.

The core raises these with no knowledge of HTTP or gRPC; each transport family maps them to its
status codes in one table (`http_status.py`, `grpc_status.py`).
"""

from trainflow.errors import TRANSIENT_EXIT_CODE, TrainflowError


class ServingError(TrainflowError):
    """The model server cannot start or cannot answer a request; the message says why."""


class InvalidInput(ServingError):
    """The request is malformed: wrong shape, dtype, values, or a missing input."""


class NotFound(ServingError):
    """No such model, version, label or signature."""


class TooLarge(ServingError):
    """The request body is over the configured maximum size."""


class Unavailable(ServingError):
    """The server is busy (too many requests in flight) or no version is loaded yet: try again later."""

    exit_code = TRANSIENT_EXIT_CODE


class Unimplemented(ServingError):
    """The protocol defines this call, but this server does not serve it."""


class ModelLoadError(ServingError):
    """A model version cannot be loaded (missing files, bad ONNX, wrong signature)."""
