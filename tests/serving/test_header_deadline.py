"""The header deadline on keep-alive connections: the wait for the next request's headers starts when the last
response ends, so a busy connection is never cut off and an idle one trickling headers always is."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from live_server import running_server

REQUEST = b"GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def answer(sock: socket.socket) -> bytes:
    """One whole response to a health request (its body is short: it arrives with its headers)."""
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_a_keep_alive_connection_sending_requests_for_longer_than_the_header_timeout_is_served(
    model_base: Path,
) -> None:
    with running_server(model_base, header_timeout_seconds=1.0) as server:
        port = int(server.rest_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            started = time.monotonic()
            while time.monotonic() - started < 3.0:  # a request every 0.4 s: each wait is shorter than 1 s
                sock.sendall(REQUEST)
                assert answer(sock).startswith(b"HTTP/1.1 200")
                time.sleep(0.4)


def test_a_keep_alive_connection_trickling_its_next_requests_headers_is_closed(model_base: Path) -> None:
    with running_server(model_base, header_timeout_seconds=1.0) as server:
        port = int(server.rest_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            for _ in range(3):  # answered requests first: the deadline counts from the last one's end
                time.sleep(0.3)
                sock.sendall(REQUEST)
                assert answer(sock).startswith(b"HTTP/1.1 200")
            answered = time.monotonic()
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n")
            closed = None
            while time.monotonic() - answered < 4.0:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                    sock.settimeout(0.1)
                    if sock.recv(1) == b"":
                        closed = time.monotonic()
                        break
                except TimeoutError:
                    continue
                except OSError:
                    closed = time.monotonic()
                    break
            assert closed is not None, "the connection trickling headers was never closed"
            assert 0.9 <= closed - answered <= 2.5
