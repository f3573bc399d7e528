"""Reading REST request bodies within a size cap, a deadline and a memory budget; JSON errors as InvalidInput."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainflow.serving import json_pieces
from trainflow.serving.errors import InvalidInput, RequestTimeout, TooLarge, Unavailable
from trainflow.serving.rest_request import RestRequest

SMALL_BODY_BYTES = 64 * 1024  # bodies this small never wait on the memory budget: health-sized requests always pass


@dataclass(frozen=True)
class BodyLimits:
    """How large a request body may be, how long it may take once the headers are in, and how many bytes of
    large bodies the server holds at once (past that, a new large body gets 503 instead of more memory)."""

    max_bytes: int
    timeout_s: float
    max_buffered_bytes: int


class BodyReader:
    """Reads request bodies within the limits; the bytes of large ones count against one shared budget."""

    def __init__(self, limits: BodyLimits) -> None:
        self.limits = limits
        self.buffered = 0  # only touched on the event loop

    async def read(self, request: RestRequest) -> bytes:
        """The whole body; a large one is held against the budget until `release(body)` (once it is answered)."""
        held = [0]
        try:
            return await self._read(request, held)
        except BaseException:
            self.buffered -= held[0]
            raise

    def release(self, body: bytes) -> None:
        """Give back what `read` held for `body`."""
        if len(body) > SMALL_BODY_BYTES:
            self.buffered -= len(body)

    async def _read(self, request: RestRequest, held: list[int]) -> bytes:
        limits = self.limits
        declared = request.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
            raise TooLarge(
                f"request body of {declared} bytes is over the server's limit of {limits.max_bytes} "
                "bytes: send fewer images per request or raise --max-request-bytes"
            )
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:  # the server's protocol wakes this at the body's deadline (rest_protocol.BODY_LATE)
            message = await request.receive()
            if message["type"] != "http.request":  # http.disconnect
                raise InvalidInput("the client closed the connection before the whole body arrived")
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(chunk)
            if size > limits.max_bytes:
                raise TooLarge(
                    f"request body is over the server's limit of {limits.max_bytes} bytes: "
                    "send fewer images per request or raise --max-request-bytes"
                )
            self._hold(held, size)
            chunks.append(chunk)
            if more and request.body_late():
                expected = f" of {declared}" if declared is not None and declared.isdigit() else ""
                raise RequestTimeout(
                    f"request body not received within {limits.timeout_s:g} s ({size}{expected} "
                    "bytes arrived): send it in one go, or raise --body-timeout-seconds for slow "
                    "links"
                )
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _hold(self, held: list[int], size: int) -> None:
        wanted = size if size > SMALL_BODY_BYTES else 0
        if wanted > held[0] and self.buffered + wanted - held[0] > self.limits.max_buffered_bytes:
            raise Unavailable(
                f"server busy: {self.buffered} bytes of request bodies are in memory, the most it "
                "holds at once; retry shortly"
            )
        self.buffered += wanted - held[0]
        held[0] = wanted


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
