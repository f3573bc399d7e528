"""Reading REST request bodies: a size cap and a deadline while reading, JSON errors as InvalidInput."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request

from trainflow.serving import json_pieces
from trainflow.serving.errors import InvalidInput, RequestTimeout, TooLarge


@dataclass(frozen=True)
class BodyLimits:
    """How large a request body may be, and how long it may take to arrive once the headers are in."""

    max_bytes: int
    timeout_s: float


async def read_body(request: Request, limits: BodyLimits) -> bytes:
    """The whole body; TooLarge as soon as it is known to be over the size, RequestTimeout past the deadline."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
        raise TooLarge(f"request body of {declared} bytes is over the server's limit of {limits.max_bytes} bytes: "
                       "send fewer images per request or raise --max-request-bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_bytes:
                    raise TooLarge(f"request body is over the server's limit of {limits.max_bytes} bytes: "
                                   "send fewer images per request or raise --max-request-bytes")
                chunks.append(chunk)
    except TimeoutError:
        expected = f" of {declared}" if declared is not None and declared.isdigit() else ""
        raise RequestTimeout(f"request body not received within {limits.timeout_s:g} s ({size}{expected} bytes "
                             "arrived): send it in one go, or raise --body-timeout-seconds for slow links") from None
    except ClientDisconnect:
        raise InvalidInput("the client closed the connection before the whole body arrived") from None
    return b"".join(chunks)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A JSON object, or InvalidInput saying what is wrong with the body."""
    if not body:
        raise InvalidInput("empty request body: expected a JSON object")
    try:
        value = json_pieces.loads(body)  # orjson, in pieces when large: never a long hold on the interpreter
    except json_pieces.JsonError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"request body is a JSON {type(value).__name__}: expected a JSON object")
    return value
