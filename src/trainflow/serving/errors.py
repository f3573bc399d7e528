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
    """The request is over a configured limit: body size, pixels per image or per request."""


class RequestTimeout(ServingError):
    """The request body did not arrive within the server's body-read timeout."""


class Unavailable(ServingError):
    """The server is busy (too many requests in flight) or no version is loaded yet: try again later."""

    exit_code = TRANSIENT_EXIT_CODE


class Unimplemented(ServingError):
    """The protocol defines this call, but this server does not serve it."""


class ModelLoadError(ServingError):
    """A model version cannot be loaded (missing files, bad ONNX, wrong signature)."""


def shown(value: object, limit: int = 80) -> str:
    """How a client-supplied value appears in an error message: quoted, and cut short when long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
