"""Native load generators for benchmarks/serve.py: wrk (REST) and h2load (gRPC), each a C program.

Both send one pre-encoded request over and over on `concurrency` connections for a fixed time, so
the generator costs little CPU next to the server. Each result: req/s, p50/p99 latency in ms,
non-2xx answers, and the server's CPU seconds per 1,000 requests (its process tree, from psutil).

Setup (Debian): apt-get install wrk nghttp2-client
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
"""


def missing_tools() -> list[str]:
    return [tool for tool in ("wrk", "h2load") if shutil.which(tool) is None]


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed), as it travels in an HTTP/2 DATA frame."""
    return struct.pack(">?I", False, len(message)) + message


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (MLServer runs workers as children)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _with_cpu(pid: int, run: Callable[[], dict[str, float]]) -> dict[str, float]:
    before = cpu_seconds(pid)
    result = run()
    result["cpu_s_per_1k"] = (cpu_seconds(pid) - before) / max(result["requests"], 1) * 1000
    return result


def wrk(
    url: str, body: bytes, concurrency: int, seconds: float, server_pid: int, headers: dict[str, str] | None = None
) -> dict[str, float]:
    """`wrk` POSTing `body` (JSON, or what `headers` say) to `url` on `concurrency` connections."""
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(body)
        script = Path(tmp) / "post.lua"
        extra = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
        script.write_text(WRK_SCRIPT.format(body=body_path) + extra)
        threads = 1 if concurrency == 1 else 2
        argv = [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(concurrency),
            "-d",
            f"{seconds:g}s",
            "--latency",
            "-s",
            str(script),
            url,
        ]

        def run() -> dict[str, float]:
            out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
            return _parse_wrk(out)

        return _with_cpu(server_pid, run)


def _parse_wrk(out: str) -> dict[str, float]:
    def latency_ms(percent: str) -> float:
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"wrk printed no {percent}% latency:\n{out}")
        return float(match.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[match.group(2)]

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:  # "connect 0, read 0, write 0, timeout 0"
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency_ms("50"),
        "p99_ms": latency_ms("99"),
        "requests": requests,
        "errors": errors,
    }


def h2load(url: str, message: bytes, concurrency: int, seconds: float, server_pid: int) -> dict[str, float]:
    """`h2load` sending one gRPC call (`message`, a serialized request) per stream, one stream per connection."""
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        body = Path(tmp) / "request.bin"
        body.write_bytes(grpc_frame(message))
        log = Path(tmp) / "requests.tsv"
        argv = [
            "h2load",
            "-c",
            str(concurrency),
            "-m",
            "1",
            "-D",
            f"{seconds:g}",
            "--warm-up-time",
            "1",
            "-d",
            str(body),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            f"--log-file={log}",
            url,
        ]

        def run() -> dict[str, float]:
            out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
            return _parse_h2load(out, log)

        return _with_cpu(server_pid, run)


def _parse_h2load(out: str, log: Path) -> dict[str, float]:
    done = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored",
        out,
    )
    rps = re.search(r"finished in ([\d.]+)(s|ms), ([\d.]+) req/s", out)
    if done is None or rps is None:
        raise RuntimeError(f"unexpected h2load output:\n{out}")
    columns = np.loadtxt(log, dtype=np.int64, ndmin=2)  # start us, HTTP status, microseconds to the end
    latencies = columns[:, 2] / 1000.0
    return {
        "rps": float(rps.group(3)),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "requests": int(done.group(3)),
        "errors": int(done.group(5)) + int(done.group(6)),
    }
