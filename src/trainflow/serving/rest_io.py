"""Reading REST request bodies: a size cap before and while reading, JSON errors as InvalidInput."""

from __future__ import annotations

from typing import Any

import orjson

from starlette.requests import Request

from trainflow.serving.errors import InvalidInput, TooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or TooLarge as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"request body of {declared} bytes is over the server's limit of {limit} bytes: "
                       "send fewer images per request or raise --max-request-bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body is over the server's limit of {limit} bytes: "
                           "send fewer images per request or raise --max-request-bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A JSON object, or InvalidInput saying what is wrong with the body."""
    if not body:
        raise InvalidInput("empty request body: expected a JSON object")
    try:
        value = orjson.loads(body)  # several times faster than json on 784-float images
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"request body is a JSON {type(value).__name__}: expected a JSON object")
    return value
