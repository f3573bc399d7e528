"""A REST request as the adapters read it, straight from the ASGI scope: no framework object per request.

The inference routes answer thousands of small requests a second, and a Starlette `Request` (its header
multidict, its body stream) cost more per request than the JSON floor's whole parse (benchmarks/README.md).
"""

from __future__ import annotations

from starlette.types import Receive, Scope

BODY_LATE = "trainflow.body_late"  # scope key: set True by the server's protocol once the body's deadline passed


class RestRequest:
    """Method, path, one header at a time and the ASGI `receive` of one HTTP request."""

    __slots__ = ("_headers", "method", "path", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.receive = receive
        self._headers: list[tuple[bytes, bytes]] = scope["headers"]

    def header(self, name: bytes) -> str | None:
        """The first value of header `name` (lower case, as ASGI servers give header names), or None."""
        for key, value in self._headers:
            if key == name:
                return value.decode("latin-1")
        return None

    def body_late(self) -> bool:
        """True once the server's protocol (`rest_protocol`) found the body still arriving past its deadline."""
        return self.scope.get(BODY_LATE, False)
