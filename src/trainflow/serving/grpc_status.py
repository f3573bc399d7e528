"""The gRPC edge's one error table: serving errors -> gRPC status codes, for every servicer method."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from trainflow.serving.errors import (
    InvalidInput,
    ModelLoadError,
    NotFound,
    RequestTimeout,
    ServingError,
    TooLarge,
    Unavailable,
    Unimplemented,
)

log = logging.getLogger(__name__)

GRPC_STATUS: dict[type[ServingError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    RequestTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    ModelLoadError: grpc.StatusCode.INTERNAL,
    ServingError: grpc.StatusCode.INTERNAL,
}

Handler = TypeVar("Handler", bound=Callable[..., Any])


def code_for(error: ServingError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in GRPC_STATUS:
            return GRPC_STATUS[cls]
    return grpc.StatusCode.INTERNAL


def grpc_errors(method: Handler) -> Handler:
    """Turn errors raised by an (async) servicer method into a gRPC status with a one-line message."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except ServingError as exc:
            await context.abort(code_for(exc), exc.message)
        except Exception as exc:
            log.exception("internal error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")

    return wrapper  # type: ignore[return-value]
