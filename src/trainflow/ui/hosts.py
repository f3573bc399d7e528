"""Answer only requests addressed to a host name the dashboard serves on: a defence against DNS rebinding.

A web page on evil.example can point its own name at 127.0.0.1 and then read the dashboard's API
from the browser; the browser still sends `Host: evil.example`, which is what gives it away.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")


def allowed_host_names(host: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The loopback names, the address the server listens on (unless it is a wildcard), and `extra`."""
    names = {*LOOPBACK_NAMES, *(name.strip().lower().strip("[]") for name in extra if name.strip())}
    if host not in WILDCARD_ADDRESSES:
        names.add(host.lower().strip("[]"))
    return frozenset(names)


def host_name(header: str) -> str:
    """The name part of a Host header: `name[:port]` or `[v6 address][:port]`, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class HostCheck:
    """ASGI middleware: 403 (JSON) for an HTTP request whose Host header names another host; `*` allows any."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "*" in self.allowed:
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if host_name(header) in self.allowed:
            await self.app(scope, receive, send)
            return
        message = (
            f"this dashboard does not serve host {header[:100]!r}: open it as http://127.0.0.1:PORT/, or start "
            "it with --allowed-host NAME for each name you reach it by"
        )
        body = json.dumps({"error": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
