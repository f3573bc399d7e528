"""The curve sink against a real MLflow server behind a slow link: acknowledged points, one kept connection, credentials.

The link is a TCP relay on loopback that holds each chunk a client sends for `delay` seconds before passing it on
(the server's answers pass at once) and keeps what it relayed, so a test sees the connections and the headers.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.tracking.conftest import MlflowServer
from trainflow.tracking.sink import MetricSink

pytestmark = pytest.mark.timeout(300)


class SlowLink:
    """Relays 127.0.0.1:port to `upstream`, each client chunk `delay` seconds late; records connections and bytes."""

    def __init__(self, upstream: int, delay: float):
        self.upstream, self.delay = upstream, delay
        self.connections = 0
        self.sent = bytearray()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(client, server, self.delay), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, 0.0), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, delay: float) -> None:
        try:
            while data := source.recv(65536):
                if delay:
                    self.sent += data
                    time.sleep(delay)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def slow_link(mlflow_server: MlflowServer) -> Iterator[SlowLink]:
    link = SlowLink(int(mlflow_server.uri.rsplit(":", 1)[1]), delay=1.0)
    try:
        yield link
    finally:
        link.close()


def _new_run(server: MlflowServer) -> str:
    client = server.client()
    experiment = client.get_experiment_by_name("sink-tests") or client.get_experiment(
        client.create_experiment("sink-tests")
    )
    return str(client.create_run(experiment.experiment_id).info.run_id)


def _losses(server: MlflowServer, run_id: str) -> list[int]:
    return sorted(point.step for point in server.client().get_metric_history(run_id, "train/loss"))


def test_a_drain_returns_once_a_slow_server_has_acknowledged_every_point(
    mlflow_server: MlflowServer, slow_link: SlowLink
) -> None:
    run_id = _new_run(mlflow_server)
    sink = MetricSink(f"http://127.0.0.1:{slow_link.port}", run_id, flush_seconds=60)
    try:
        for step in range(1, 51):
            sink.record(step, {"train/loss": 1.0 / step})
        began = time.monotonic()
        assert sink.drain(30)
        assert time.monotonic() - began >= slow_link.delay  # it waited for the answer, not only for the thread
        # read straight from the server, past the slow link: a worker may exit right after the drain
        assert _losses(mlflow_server, run_id) == list(range(1, 51))
    finally:
        assert sink.close()


def test_batches_go_over_one_kept_connection_with_mlflows_credentials(
    mlflow_server: MlflowServer, slow_link: SlowLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    run_id = _new_run(mlflow_server)
    sink = MetricSink(f"http://127.0.0.1:{slow_link.port}", run_id, flush_seconds=60)
    try:
        for batch in range(3):
            sink.record(batch, {"train/loss": 0.5})
            assert sink.drain(30)
    finally:
        assert sink.close()
    assert _losses(mlflow_server, run_id) == [0, 1, 2]
    assert slow_link.connections == 1  # not a connection (and a TLS context) a batch
    credentials = base64.b64encode(b"alice:s3cret").decode()
    assert slow_link.sent.count(f"Authorization: Basic {credentials}".encode()) == 3


def test_a_drain_gives_up_at_once_when_the_server_is_down() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    sink = MetricSink(f"http://127.0.0.1:{port}", "no-such-run", flush_seconds=60)
    sink.record(1, {"train/loss": 0.5})
    began = time.monotonic()
    assert not sink.drain(10)
    assert time.monotonic() - began < 5  # the refusal ends the wait: training is never stalled by a dead server
    assert not sink.close(timeout=0.5)
