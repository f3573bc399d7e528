"""Errors of the ui layer: UiError and the cases the API answers with their own status."""

from trainflow.errors import TRANSIENT_EXIT_CODE, TrainflowError


class UiError(TrainflowError):
    """A dashboard request could not be answered; the message says what to send or start instead (HTTP 400)."""


class WorkflowNotFound(UiError):
    """The page asked for a workflow this backend does not know (HTTP 404)."""


class ModelUnavailable(UiError):
    """The workflow serves no model right now: not yet, disabled, or its server is down (HTTP 503)."""

    exit_code = TRANSIENT_EXIT_CODE


class ModelFailed(UiError):
    """The model server answered with an error (HTTP 502)."""


class RequestTooLarge(UiError):
    """The request body is over the dashboard's limit (HTTP 413)."""
