"""The REST edge's one error table: serving errors -> HTTP status and a `{"error": "..."}` body."""

from __future__ import annotations

import logging

import orjson
from starlette.types import Receive, Scope, Send

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

# TF Serving's REST status mapping (INVALID_ARGUMENT 400, NOT_FOUND 404, UNAVAILABLE 503, ...), plus 408 and 413.
HTTP_STATUS: dict[type[ServingError], int] = {
    InvalidInput: 400,
    NotFound: 404,
    RequestTimeout: 408,
    TooLarge: 413,
    Unimplemented: 501,
    Unavailable: 503,
    ModelLoadError: 500,
    ServingError: 500,
}
# the rest of such a body may still be on its way: answer and close rather than read it as the next request
_CLOSES_CONNECTION = (RequestTimeout, TooLarge)


def status_for(error: ServingError) -> int:
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


class Reply:
    """An HTTP response with its bytes ready: the two ASGI messages, nothing else (no framework object)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes, status: int, content_type: bytes, headers: dict[str, str] | None = None) -> None:
        self.body = body
        self.status = status
        self.headers = [(b"content-length", str(len(body)).encode()), (b"content-type", content_type)]
        if headers:
            self.headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(orjson.dumps(body), status, b"application/json", headers)


def error_response(error: Exception) -> Reply:
    """The response for any exception a handler raised; unexpected ones are logged and answered 500."""
    if isinstance(error, ServingError):
        headers = {"Connection": "close"} if isinstance(error, _CLOSES_CONNECTION) else None
        return json_response({"error": error.message}, status_for(error), headers)
    log.exception("internal error while serving a request", exc_info=error)
    return json_response({"error": f"internal error: {type(error).__name__}: {error}"}, 500)
