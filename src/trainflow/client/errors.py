"""Errors of the client layer."""

from trainflow.errors import UNREACHABLE_EXIT_CODE, TrainflowError


class ClientError(TrainflowError):
    """A prediction request failed or was refused; the message says what the server answered."""


class ServerUnreachable(ClientError):
    """Nothing answered at the server address: start the server or check --server."""

    exit_code = UNREACHABLE_EXIT_CODE
