"""The dashboard against hostile requests, over real HTTP on loopback: big bodies, image bombs, foreign Host names."""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from servers import free_port, stop, wait_for_port

WORKFLOW = "ui-hostile"
MB = 1024 * 1024


@dataclass
class Ui:
    """A `trainflow ui` process and the workflow it shows (one that failed: no model is served)."""

    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def predict_path(self) -> str:
        return f"/api/workflows/{WORKFLOW}/predict"

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def start_ui(home: Path, env: dict[str, str], *extra: str) -> Ui:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainflow", "ui", "--port", str(port), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=60, proc=proc)
    return Ui(proc, port)


@pytest.fixture(scope="module")
def ui_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A TRAINFLOW_HOME holding one workflow that failed at its first step (cheap: nothing trains)."""
    home = tmp_path_factory.mktemp("ui-hostile-home")
    env = {**os.environ, "TRAINFLOW_HOME": str(home)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trainflow", *args], env=env, capture_output=True, text=True, timeout=120
        )

    submitted = run(
        "submit",
        "model-train",
        "-p",
        f"job-name={WORKFLOW}",
        "-p",
        f"s3-data-url={home}/missing",
        "-p",
        "model-serving=false",
        "--wait",
    )
    assert "Failed" in submitted.stdout + submitted.stderr, submitted.stdout + submitted.stderr
    try:
        yield env
    finally:
        run("delete", "--all")


@pytest.fixture(scope="module")
def ui(ui_env: dict[str, str]) -> Iterator[Ui]:
    server = start_ui(Path(ui_env["TRAINFLOW_HOME"]), ui_env)
    try:
        yield server
    finally:
        stop(server.proc)


def raw_request(port: int, head: str, body_chunks: Iterable[bytes] = (), timeout: float = 60) -> tuple[int, bytes, int]:
    """Send a request over a plain socket, stopping the upload once the server answers; (status, body, bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        for chunk in body_chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered before the body ended
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        response = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in response and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            response += data
        header, _, body = response.partition(b"\r\n\r\n")
        lengths = [
            int(line.split(b":")[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length:")
        ]
        length = lengths[0] if lengths else 0
        while len(body) < length and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            body += data
    return int(header.split()[1]), body, sent


def chunked(total: int, size: int = MB) -> Iterator[bytes]:
    piece = f"{size:x}\r\n".encode() + b" " * size + b"\r\n"
    for _ in range(total // size):
        yield piece
    yield b"0\r\n\r\n"


def png(width: int, height: int, rows: bytes | None = None) -> bytes:
    """A 1-bit PNG of `width` x `height` black pixels (a few KB, however large it decodes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush() if rows is None else rows
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def image_body(data: bytes) -> dict[str, str]:
    return {"image": "data:image/png;base64," + base64.b64encode(data).decode()}


def test_a_300_mb_chunked_post_is_refused_with_413_without_growing_the_ui(ui: Ui) -> None:
    before = ui.rss_mb()
    head = (
        f"POST {ui.predict_path} HTTP/1.1\r\nHost: 127.0.0.1:{ui.port}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    status, body, sent = raw_request(ui.port, head, chunked(300 * MB))
    assert status == 413 and "larger than" in json.loads(body)["error"]
    assert sent < 100 * MB  # the upload was cut short, not read to the end
    assert ui.rss_mb() - before < 50
    assert httpx.get(f"{ui.url}/api/workflows", timeout=30).status_code == 200  # still serving


def test_a_declared_oversized_body_is_refused_before_it_is_sent(ui: Ui) -> None:
    head = (
        f"POST {ui.predict_path} HTTP/1.1\r\nHost: 127.0.0.1:{ui.port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {300 * MB}\r\n\r\n"
    )
    status, body, _ = raw_request(ui.port, head, timeout=30)
    assert status == 413 and "error" in json.loads(body)


@pytest.mark.parametrize(
    ("image", "says"),
    [
        (png(30000, 30000), "could not be read"),  # past PIL's own bomb limit
        (png(10000, 10000), "10000x10000 pixels"),  # under it, but 100 million pixels to decode from 12 KB
        (png(100, 100, rows=b"not zlib"), "could not be read"),
        (b"GIF89a" + bytes(range(64)), "could not be read"),
    ],
    ids=["past-pil-limit", "100-megapixels", "bad-zlib", "garbage-gif"],
)
def test_image_bombs_and_undecodable_images_get_a_json_400(ui: Ui, image: bytes, says: str) -> None:
    response = httpx.post(f"{ui.url}{ui.predict_path}", json=image_body(image), timeout=60)
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    assert says in response.json()["error"] and "\n" not in response.json()["error"]


@pytest.mark.parametrize(
    ("instances", "says"),
    [
        ([["0.1"] * 784], "strings"),
        ([[True] * 784], "true/false"),
        ([[None] * 784], "null"),
    ],
)
def test_pixels_that_are_not_numbers_are_a_400_saying_so(ui: Ui, instances: list, says: str) -> None:
    response = httpx.post(f"{ui.url}{ui.predict_path}", json={"instances": instances}, timeout=30)
    assert response.status_code == 400 and says in response.json()["error"]


def test_json_nested_past_the_parser_is_a_400(ui: Ui) -> None:
    response = httpx.post(f"{ui.url}{ui.predict_path}", content=b"[" * 200_000, timeout=30)
    assert response.status_code == 400 and "not JSON" in response.json()["error"]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8001", "127.0.0.1.evil.example", ""])
def test_a_foreign_host_header_is_refused_against_dns_rebinding(ui: Ui, host: str) -> None:
    status, body, _ = raw_request(ui.port, f"GET /api/workflows HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    assert status == 403 and "--allowed-host" in json.loads(body)["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}"])
def test_the_names_it_serves_on_are_answered(ui: Ui, host: str) -> None:
    head = f"GET /api/workflows HTTP/1.1\r\nHost: {host.format(port=ui.port)}\r\nConnection: close\r\n\r\n"
    status, body, _ = raw_request(ui.port, head)
    assert status == 200 and WORKFLOW in {w["name"] for w in json.loads(body)}


def test_allowed_host_option_adds_names_and_star_allows_any(ui_env: dict[str, str]) -> None:
    home = Path(ui_env["TRAINFLOW_HOME"])
    cases = {"dash.example": (("dash.example:80", 200), ("evil.example", 403)), "*": (("evil.example", 200),)}
    for allowed, requests in cases.items():
        server = start_ui(home, ui_env, "--allowed-host", allowed)
        try:
            for host, expected in requests:
                head = f"GET /api/workflows HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                assert raw_request(server.port, head)[0] == expected, (allowed, host)
        finally:
            stop(server.proc)
