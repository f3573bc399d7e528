"""Port-forwards to a workflow's services: real loopback servers stand in for the pods; the API is a fake."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kubernetes.client.exceptions import ApiException
from live_server import running_server
from model_files import centroid_classifier_onnx, publish

from tests.workflows.kubernetes.fake_cluster import FakeCluster
from trainflow.workflows import MODEL_TRAIN, WorkflowError
from trainflow.workflows.kubernetes import KubernetesBackend, portforward
from trainflow.workflows.kubernetes.forwarding import MODEL_SERVER, TENSORBOARD, forward_service

PodPorts = dict[tuple[str, int], int]  # (pod, pod port) -> the real loopback port standing in for it


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"tensorboard says hello to {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def board() -> Iterator[int]:
    """A real HTTP server on loopback: the TensorBoard pod's port 6006."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def loopback_streams(pods: PodPorts, opened: list[tuple[str, int]] | None = None) -> portforward.OpenStream:
    """Instead of the API server's websocket: a real connection to the loopback server standing in for pod:port."""

    def open_stream(pod: str, port: int) -> socket.socket:
        if opened is not None:
            opened.append((pod, port))
        return socket.create_connection(("127.0.0.1", pods[(pod, port)]), timeout=10)

    return open_stream


@pytest.fixture
def cluster() -> FakeCluster:
    cluster = FakeCluster()
    KubernetesBackend(namespace="ml", api=cluster.api()).submit(MODEL_TRAIN, {"job-name": "run1"})
    # The step names differ from the built-in ones: services are found by the role they are labelled with.
    cluster.add_service("ml", "run1", "board", TENSORBOARD, {"web": 6006}, "run1-board")
    cluster.add_service_pod("ml", "run1-board-b", "run1", "board", {"web": 6006})
    cluster.add_service_pod("ml", "run1-board-a", "run1", "board", {"web": 6006}, ready=False)
    return cluster


def backend(cluster: FakeCluster) -> KubernetesBackend:
    return KubernetesBackend(namespace="ml", api=cluster.api())


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def test_tensorboard_is_reached_through_a_ready_pod_of_its_service_fake_k8s_api(
    cluster: FakeCluster, board: int
) -> None:
    opened: list[tuple[str, int]] = []
    streams = loopback_streams({("run1-board-b", 6006): board}, opened)
    with forward_service(backend(cluster), "run1", TENSORBOARD, open_stream=streams) as forwarded:
        assert forwarded.service == "run1-board" and forwarded.pod == "run1-board-b"  # run1-board-a is not ready
        [address] = forwarded.addresses.values()
        with ThreadPoolExecutor(8) as pool:  # connections at once, each its own stream
            answers = list(pool.map(lambda i: get(f"http://{address}/run/{i}"), range(16)))
    assert answers == [f"tensorboard says hello to /run/{i}" for i in range(16)]
    assert opened == [("run1-board-b", 6006)] * 16


def test_closing_the_forward_frees_its_port_and_ends_open_connections_fake_k8s_api(
    cluster: FakeCluster, board: int
) -> None:
    streams = loopback_streams({("run1-board-b", 6006): board})
    with forward_service(backend(cluster), "run1", TENSORBOARD, open_stream=streams) as forwarded:
        host, port = forwarded.addresses["web"].split(":")
        held = socket.create_connection((host, int(port)), timeout=10)
        held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert held.recv(100).startswith(b"HTTP/1.0 200")
    held.settimeout(10)
    while held.recv(4096):  # the rest of the answer, then the end the forward's close brings
        pass
    held.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5)


def test_a_chosen_local_port_is_used_and_a_busy_one_is_one_line_fake_k8s_api(cluster: FakeCluster, board: int) -> None:
    streams = loopback_streams({("run1-board-b", 6006): board})
    with forward_service(backend(cluster), "run1", TENSORBOARD, open_stream=streams) as first:
        port = int(first.addresses["web"].rsplit(":", 1)[1])
        with (
            pytest.raises(WorkflowError, match=rf"^cannot listen on 127.0.0.1:{port} .*pick another port$"),
            forward_service(backend(cluster), "run1", TENSORBOARD, (port,), open_stream=streams),
        ):
            pass


def test_no_ready_pod_behind_the_service_is_one_clear_line_fake_k8s_api(cluster: FakeCluster) -> None:
    del cluster.pods[("ml", "run1-board-b")]
    with (
        pytest.raises(WorkflowError) as error,
        forward_service(backend(cluster), "run1", TENSORBOARD, open_stream=loopback_streams({})),
    ):
        pass
    assert str(error.value) == (
        "no ready pod behind Service run1-board in namespace ml (1 pod(s), none ready): "
        "see `kubectl get pods -n ml -l trainflow.io/step=board,trainflow.io/workflow=run1`"
    )


def test_a_workflow_without_the_service_or_unknown_is_one_clear_line_fake_k8s_api(cluster: FakeCluster) -> None:
    with (
        pytest.raises(WorkflowError, match="^workflow run1 has no running model server in namespace ml: see"),
        forward_service(backend(cluster), "run1", MODEL_SERVER, open_stream=loopback_streams({})),
    ):
        pass
    with (
        pytest.raises(WorkflowError, match="^workflow nope not found in namespace ml"),
        forward_service(backend(cluster), "nope", TENSORBOARD, open_stream=loopback_streams({})),
    ):
        pass


def test_a_refused_stream_closes_that_connection_and_says_why_fake_k8s_api(
    cluster: FakeCluster, board: int, caplog: pytest.LogCaptureFixture
) -> None:
    def refused(pod: str, port: int) -> Any:
        raise portforward.stream_error(ApiException(status=403, reason="Forbidden"), pod, port, "ml")

    with forward_service(backend(cluster), "run1", TENSORBOARD, open_stream=refused) as forwarded:
        with pytest.raises(OSError):  # the connection ends without an answer (urllib: RemoteDisconnected/reset)
            get(f"http://{forwarded.addresses['web']}/")
        streams = loopback_streams({("run1-board-b", 6006): board})
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "the cluster refused the port-forward to pod run1-board-b:6006 (403): your account needs `create` on "
        "pods/portforward in namespace ml"
    ]
    with forward_service(backend(cluster), "run1", TENSORBOARD, open_stream=streams) as forwarded:
        assert get(f"http://{forwarded.addresses['web']}/") == "tensorboard says hello to /"  # once allowed, it works


def test_the_official_client_opens_streams_through_the_pods_portforward_subresource_fake_k8s_api() -> None:
    """No API server here: the client's portforward fails to connect and that is one line naming the pod."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = "http://127.0.0.1:1"  # nothing listens on port 1
    core = client.CoreV1Api(client.ApiClient(configuration))
    with pytest.raises(WorkflowError, match=r"^cannot open a port-forward to pod p0:8501 \("):
        portforward.api_stream(core, "ml")("p0", 8501)


def test_tensorboard_command_forwards_and_prints_the_local_url_fake_k8s_api(
    cluster: FakeCluster, board: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainflow.cli import forward, workflows

    monkeypatch.setattr(workflows, "backend_for", lambda kind, namespace: backend(cluster))
    monkeypatch.setattr(portforward, "api_stream", lambda core, ns: loopback_streams({("run1-board-b", 6006): board}))
    answers: list[str] = []

    def browse_instead_of_waiting() -> None:
        sys.stdout.flush()
        printed = sys.stdout.buffer.getvalue().decode()  # what the command printed so far (CliRunner's buffer)
        answers.append(get(printed.split("TensorBoard of run1: ", 1)[1].split()[0] + "/scalars"))

    monkeypatch.setattr(forward, "wait_for_interrupt", browse_instead_of_waiting)
    result = CliRunner().invoke(workflows.tensorboard, ["run1", "--backend", "kubernetes", "-n", "ml"])
    assert result.exit_code == 0, result.output
    assert answers == ["tensorboard says hello to /scalars"]


def test_services_command_names_the_commands_that_forward_without_kubectl_fake_k8s_api(
    cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainflow.cli import workflows

    monkeypatch.setattr(workflows, "backend_for", lambda kind, namespace: backend(cluster))
    result = CliRunner().invoke(workflows.services, ["--backend", "kubernetes", "-n", "ml"], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert "run1/board from here: kubectl port-forward -n ml svc/run1-board 6006" in result.output
    assert "without kubectl: trainflow tensorboard NAME --backend kubernetes -n ml" in result.output


@pytest.fixture(scope="module")
def model_base(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    base = tmp_path_factory.mktemp("served") / "digits"
    publish(base, 1, centroid_classifier_onnx(mnist_dir))
    return base


@pytest.mark.parametrize("protocol", ["grpc", "rest", "v2-rest"])
def test_predict_asks_the_workflows_model_server_through_a_port_forward_fake_k8s_api(
    cluster: FakeCluster,
    model_base: Path,
    mnist_dir: Path,
    protocol: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trainflow.cli import predict, workflows

    cluster.workflows[("ml", "run1")]["spec"]["arguments"]["parameters"].append(
        {"name": "model-name", "value": "digits"}
    )
    cluster.add_server("ml", "run1")
    cluster.add_service_pod("ml", "run1-model-server-x", "run1", "serve-model", {"rest": 8501, "grpc": 9000})
    opened: list[tuple[str, int]] = []
    with running_server(model_base, model_name="digits") as server:
        pods = {("run1-model-server-x", 8501): server.rest_port, ("run1-model-server-x", 9000): server.grpc_port}
        monkeypatch.setattr(workflows, "backend_for", lambda kind, namespace: backend(cluster))
        monkeypatch.setattr(portforward, "api_stream", lambda core, ns: loopback_streams(pods, opened))
        args = ["--workflow", "run1", "--backend", "kubernetes", "-n", "ml", "--protocol", protocol]
        result = CliRunner().invoke(predict.predict_command, [*args, "--data-dir", str(mnist_dir), "--num", "5"])
    assert result.exit_code == 0, result.output
    assert "Accuracy: " in result.output and "/5 = " in result.output
    wanted = 8501 if "rest" in protocol else 9000
    assert opened and {port for _, port in opened} == {wanted}


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--workflow", "run1"], "error: workflow run1 serves no model on this machine: see `trainflow services`"),
        (
            ["--workflow", "run1", "--server", "127.0.0.1:1", "--backend", "kubernetes"],
            "error: give --workflow (its model server) or --server (an address), not both",
        ),
    ],
)
def test_predict_with_a_workflow_it_cannot_reach_is_one_line(flags: list[str], line: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", "predict", *flags, "--num", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and out.stderr.strip() == line, out.stderr
