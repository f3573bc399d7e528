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
            assert closed - answered >= 0.9  # not before the 1 s deadline (the loop above ends at 4 s)


def closed_after(sock: socket.socket, since: float, limit: float) -> float | None:
    """Seconds from `since` until the server closed `sock` (None if still open after `limit` s)."""
    sock.settimeout(0.05)
    while time.monotonic() - since < limit:
        try:
            if sock.recv(1) == b"":
                return time.monotonic() - since
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - since
    return None


def test_an_idle_keep_alive_connection_is_closed_after_uvicorns_keep_alive_timeout_from_its_last_response(
    model_base: Path,
) -> None:
    # the header deadline (20 s) is far off: what closes the idle connection is the keep-alive timeout (5 s)
    with running_server(model_base, header_timeout_seconds=20.0) as server:
        port = int(server.rest_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            for _ in range(2):  # the second response's end, 2 s after the first, is what the idle time counts from
                sock.sendall(REQUEST)
                assert answer(sock).startswith(b"HTTP/1.1 200")
                answered = time.monotonic()
                time.sleep(2.0)
            waited = closed_after(sock, answered, 12.0)  # well before the 20 s header deadline
            assert waited is not None, "the idle keep-alive connection was never closed"
            assert waited >= 4.8


def test_a_keep_alive_connection_whose_next_request_has_begun_waits_for_the_header_deadline_not_the_idle_one(
    model_base: Path,
) -> None:
    with running_server(model_base, header_timeout_seconds=7.0) as server:
        port = int(server.rest_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(REQUEST)
            assert answer(sock).startswith(b"HTTP/1.1 200")
            answered = time.monotonic()
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n")  # a byte came: no longer idle
            waited = closed_after(sock, answered, 10.0)
            assert waited is not None, "the connection with incomplete headers was never closed"
            assert waited >= 6.8  # the 7 s header deadline, not the 5 s idle timeout
