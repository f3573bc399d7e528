"""The REST edge's one error table: serving errors -> HTTP status and a `{"error": "..."}` body."""

from __future__ import annotations

import logging

import orjson
from starlette.responses import Response

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


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error_response(error: Exception) -> Response:
    """The response for any exception a handler raised; unexpected ones are logged and answered 500."""
    if isinstance(error, ServingError):
        headers = {"Connection": "close"} if isinstance(error, _CLOSES_CONNECTION) else None
        return json_response({"error": error.message}, status_for(error), headers)
    log.exception("internal error while serving a request", exc_info=error)
    return json_response({"error": f"internal error: {type(error).__name__}: {error}"}, 500)
