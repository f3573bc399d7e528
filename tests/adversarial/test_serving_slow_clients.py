"""Slow clients (issue 10, defect 3): uploads trickling a body hold no inference slot and end in 408.

Real sockets on loopback: the slow uploads are raw TCP connections sending a byte now and then, while a
real REST client and a real gRPC client send ordinary requests to the same server.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))

from live_server import running_server
from model_files import constant_classifier_onnx, publish

from trainflow.serving.protos.tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

IMAGE = [0.5] * 784


@pytest.fixture(scope="module")
def model_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("slow") / "mnist"
    publish(base, 1, constant_classifier_onnx(7))
    return base


@contextmanager
def trickling_uploads(port: int, count: int, path: str = "/v1/models/mnist:predict") -> Iterator[list[socket.socket]]:
    """`count` POSTs that declare a 100 kB body and send one byte of it every 0.2 s until closed."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\n\r\n{".encode()
        )
        sockets.append(sock)
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.2):
            for sock in sockets:
                try:
                    sock.send(b" ")
                except OSError:  # the server answered and closed: that one is done
                    pass

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield sockets
    finally:
        stop.set()
        thread.join()
        for sock in sockets:
            sock.close()


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or resets it, as it may once it closed)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def grpc_predict(address: str) -> list[int]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    request.model_spec.signature_name = "predict_images"
    request.inputs["images"].CopyFrom(_tensor(np.full((1, 784), 0.5, np.float32)))
    with grpc.insecure_channel(address) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)
    return list(response.outputs["classes"].int64_val)


def _tensor(values: np.ndarray):  # -> TensorProto
    from trainflow.serving.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_content=values.tobytes(),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in values.shape]
        ),
    )


def test_slow_uploads_get_408_and_never_lock_out_rest_or_grpc(model_base: Path) -> None:
    # three times more stalled uploads than inference slots: before, each held a slot until its body came
    with running_server(model_base, max_concurrency=4, body_timeout_seconds=3.0) as server:
        port = int(server.rest_url.rsplit(":", 1)[1])
        with trickling_uploads(port, 12) as slow, httpx.Client(base_url=server.rest_url, timeout=10) as client:
            time.sleep(0.5)  # every slow upload is in, mid-body
            for _ in range(3):
                tfs = client.post(
                    "/v1/models/mnist:predict", json={"signature_name": "predict_images", "instances": [IMAGE]}
                )
                assert tfs.status_code == 200, tfs.text
                assert tfs.json()["predictions"][0]["classes"] == 7
                v2 = client.post(
                    "/v2/models/mnist/infer",
                    json={"inputs": [{"name": "images", "shape": [1, 784], "datatype": "FP32", "data": IMAGE}]},
                )
                assert v2.status_code == 200, v2.text
                assert grpc_predict(server.grpc_address) == [7]
            assert client.get("/v2/health/ready").json() == {"ready": True}
            for sock in slow:
                response = read_response(sock)
                assert response.startswith(b"HTTP/1.1 408"), response
                assert b"connection: close" in response.lower()
        assert server.plane.in_flight == 0


def test_the_408_says_what_happened_and_which_flag_to_raise(model_base: Path) -> None:
    with running_server(model_base, body_timeout_seconds=1.0) as server:
        port = int(server.rest_url.rsplit(":", 1)[1])
        with trickling_uploads(port, 1, "/v2/models/mnist/infer") as (sock,):
            response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 408"), response
    assert b"request body not received within 1 s" in response and b"--body-timeout-seconds" in response, response


def test_a_body_sent_in_pieces_within_the_timeout_is_served(model_base: Path) -> None:
    body = httpx.Request("POST", "http://x", json={"instances": [IMAGE]}).read()
    with running_server(model_base, body_timeout_seconds=5.0) as server:
        port = int(server.rest_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                f"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                "Content-Type: application/json\r\nConnection: close\r\n\r\n".encode()
            )
            for start in range(0, len(body), len(body) // 4 + 1):
                sock.sendall(body[start : start + len(body) // 4 + 1])
                time.sleep(0.2)
            response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 200"), response[:200]


def test_connections_trickling_headers_are_closed_and_others_served(model_base: Path) -> None:
    with running_server(model_base, header_timeout_seconds=1.0) as server:
        port = int(server.rest_url.rsplit(":", 1)[1])
        slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(50)]
        try:
            started = time.monotonic()
            for sock in slow:
                sock.sendall(b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            with httpx.Client(base_url=server.rest_url, timeout=10) as client:
                while time.monotonic() - started < 2.5:  # a header line every 0.1 s: never done, never idle
                    for sock in slow:
                        try:
                            sock.sendall(b"X-Slow: 1\r\n")
                        except OSError:
                            pass
                    assert client.get("/v2/health/live").status_code == 200
                    time.sleep(0.1)
            assert all(read_response(sock) == b"" for sock in slow)  # closed without an answer
        finally:
            for sock in slow:
                sock.close()


def test_a_request_slower_than_the_header_timeout_is_not_cut_off(model_base: Path) -> None:
    # batching holds the request for 1.5 s, three times the header deadline: it is past its headers, so it stays
    with (
        running_server(
            model_base, header_timeout_seconds=0.5, max_batch_size=64, batch_timeout_micros=1_500_000
        ) as server,
        httpx.Client(base_url=server.rest_url, timeout=10) as client,
    ):
        for _ in range(2):  # and the same keep-alive connection serves the next one
            response = client.post(
                "/v1/models/mnist:predict", json={"signature_name": "predict_images", "instances": [IMAGE]}
            )
            assert response.status_code == 200


def test_large_bodies_in_memory_are_bounded_and_small_requests_still_pass(model_base: Path) -> None:
    # 100 kB bodies: the server holds at most 8 x 100 kB of large bodies at once, whatever the connections
    with running_server(model_base, max_request_bytes=100_000, body_timeout_seconds=5.0) as server:
        port = int(server.rest_url.rsplit(":", 1)[1])
        stalled = []
        try:
            for _ in range(12):  # 95 kB each, then nothing: 1.1 MB if they were all kept
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(
                    b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                    + b" " * 95_000
                )
                stalled.append(sock)
            time.sleep(0.5)
            with httpx.Client(base_url=server.rest_url, timeout=10) as client:
                small = client.post(
                    "/v1/models/mnist:predict", json={"signature_name": "predict_images", "instances": [IMAGE]}
                )
                assert small.status_code == 200, small.text
            answers = [read_response(sock) for sock in stalled]
        finally:
            for sock in stalled:
                sock.close()
    busy = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
    assert 4 <= len(busy) <= 5 and b"bytes of request bodies are in memory" in busy[0]
    assert all(a.startswith((b"HTTP/1.1 503", b"HTTP/1.1 408")) for a in answers)
