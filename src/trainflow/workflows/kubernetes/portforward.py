"""A port-forward through the official client: a loopback port on this machine that reaches one pod's port.

Each accepted connection opens its own stream to the pod (the API server's pods/portforward subresource, over the
`kubernetes` client's websocket) and bytes are piped both ways until either side closes. What opens that stream
is injectable (`OpenStream`), so tests substitute a plain loopback connection for the API server.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from trainflow.workflows.errors import WorkflowError

log = logging.getLogger(__name__)
OpenStream = Callable[[str, int], Any]  # (pod, port) -> a connected socket-like object (recv, sendall, shutdown, close)
CHUNK = 65536
ACCEPT_POLL_SECONDS = 0.2  # how soon `close` is noticed by the accepting thread


def api_stream(core: Any, namespace: str) -> OpenStream:
    """Streams through the API server (CoreV1Api's connect_get_namespaced_pod_portforward); no kubectl needed."""

    def open_stream(pod: str, port: int) -> Any:
        from kubernetes.stream import portforward

        try:
            forward = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
        except Exception as exc:  # noqa: BLE001 - the client raises ApiException, websocket and socket errors
            raise stream_error(exc, pod, port, namespace) from None
        return forward.socket(port)

    return open_stream


def stream_error(exc: Exception, pod: str, port: int, namespace: str) -> WorkflowError:
    """Why a stream to a pod could not open, in one line with what to do."""
    status = getattr(exc, "status", None)
    if status in (401, 403):
        return WorkflowError(
            f"the cluster refused the port-forward to pod {pod}:{port} ({status}): your account needs `create` on "
            f"pods/portforward in namespace {namespace}"
        )
    if status == 404:
        return WorkflowError(f"pod {pod} is gone from namespace {namespace}: run the command again to pick another")
    first_line = (str(getattr(exc, "reason", None) or exc).splitlines() or [""])[0][:300]
    return WorkflowError(f"cannot open a port-forward to pod {pod}:{port} ({first_line})")


class PortForward:
    """Listens on `host:local_port` (0: a free port) and forwards every connection to `pod:remote_port`."""

    def __init__(
        self, open_stream: OpenStream, pod: str, remote_port: int, local_port: int = 0, host: str = "127.0.0.1"
    ) -> None:
        self.pod, self.remote_port, self._open = pod, remote_port, open_stream
        try:
            self._listener = socket.create_server((host, local_port))
        except OSError as exc:
            raise WorkflowError(
                f"cannot listen on {host}:{local_port} for the port-forward ({exc.strerror}): pick another port"
            ) from None
        self._listener.settimeout(ACCEPT_POLL_SECONDS)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._open_sockets: set[Any] = set()
        self.errors: list[str] = []  # one line per connection the pod could not be reached for
        self._acceptor = threading.Thread(target=self._accept, name=f"port-forward {pod}:{remote_port}", daemon=True)
        self._acceptor.start()

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        """Stop listening and close every forwarded connection."""
        self._closed.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            sockets, self._open_sockets = list(self._open_sockets), set()
        for sock in sockets:
            _close(sock)

    def __enter__(self) -> PortForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        """Open a stream to the pod for one accepted connection and pipe both ways; a failure closes only it."""
        client.settimeout(None)
        try:
            remote = self._open(self.pod, self.remote_port)
        except Exception as exc:  # noqa: BLE001 - one connection failing must not stop the forward
            message = str(exc) if isinstance(exc, WorkflowError) else f"cannot reach pod {self.pod}: {exc}"
            self.errors.append(message)
            log.error("%s", message)
            _close(client)
            return
        if not self._track(client, remote):
            return
        upstream = threading.Thread(target=_pump, args=(client, remote), daemon=True)
        upstream.start()
        _pump(remote, client)
        upstream.join()
        with self._lock:
            self._open_sockets -= {client, remote}
        _close(client)
        _close(remote)

    def _track(self, *sockets: Any) -> bool:
        """Remember open sockets for `close`; False (and closed) if the forward closed meanwhile."""
        with self._lock:
            if not self._closed.is_set():
                self._open_sockets.update(sockets)
                return True
        for sock in sockets:
            _close(sock)
        return False


def _pump(source: Any, target: Any) -> None:
    """Copy bytes until `source` ends, then tell `target` no more will come."""
    try:
        while chunk := source.recv(CHUNK):
            target.sendall(chunk)
    except OSError:
        pass  # the other side or `close` ended the connection: nothing to report
    try:
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _close(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
