"""Run the dashboard with uvicorn."""

from __future__ import annotations

import logging
import socket
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from trainflow.ui.app import create_app
from trainflow.ui.errors import UiError
from trainflow.ui.hosts import allowed_host_names
from trainflow.workflows.backend import Backend
from trainflow.workflows.backends import DEFAULT, Where, open_backend

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8001


def serve_ui(
    home: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    on_ready: Callable[[str], None] | None = None,
    allowed_hosts: Iterable[str] = (),
    backend: Backend | None = None,
) -> None:
    """Serve the dashboard for the workflows under `home` (or of `backend`) until interrupted; `on_ready(url)` once
    the port is ours.

    Requests must be addressed (Host header) to a loopback name, to `host`, or to one of `allowed_hosts` (`*`: any).
    """
    import uvicorn

    check_port_free(host, port)
    with tempfile.TemporaryDirectory(prefix="trainflow-ui-") as cache:
        target = backend or open_backend(DEFAULT, Where(home))
        app = create_app(target, Path(cache), allowed_host_names(host, allowed_hosts))
        url = f"http://{host}:{port}/"
        log.info("dashboard for %s at %s", home if backend is None else target.name, url)
        if on_ready is not None:
            on_ready(url)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def check_port_free(host: str, port: int) -> None:
    """Fail with a clear message before uvicorn would log a bind error and exit."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UiError(f"cannot resolve --host {host}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UiError(
                f"cannot listen on {host}:{port} ({exc.strerror}): stop what uses it or pick another --port"
            ) from None
