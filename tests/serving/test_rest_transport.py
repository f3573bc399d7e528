"""The REST server's connections: responses leave at once, not after the client's delayed ACK."""

from __future__ import annotations

import socket

import httpx


def test_each_rest_connection_sends_its_responses_without_nagles_delay(server) -> None:
    # Without TCP_NODELAY a response's body waits for the client's delayed ACK of its headers: ~40 ms per
    # request on a keep-alive connection (a sequential client got 22 requests/s instead of ~2,500).
    with httpx.Client(base_url=server.rest_url) as client:
        for _ in range(3):
            assert client.get("/v2/health/ready").status_code == 200
        connections = list(server._uvicorn.server_state.connections)
        assert connections, "the client's keep-alive connection is open on the server"
        for protocol in connections:
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
