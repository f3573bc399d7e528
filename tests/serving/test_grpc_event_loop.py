"""The gRPC server's event loop: large requests run on the data plane's workers, so the loop keeps answering;
its lag is measured beside the REST loop's."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
from live_server import running_server

from trainflow.serving.protos.kserve import grpc_predict_v2_pb2 as pb
from trainflow.serving.protos.kserve import grpc_predict_v2_pb2_grpc as pb_grpc
from trainflow.serving.server import ModelServer

LARGE = 256  # rows: ~800 kB of raw FP32, far more work than a request may do on the loop


def infer_request(rows: int, value: float = 0.5) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="mnist")
    request.inputs.add(name="images", datatype="FP32", shape=[rows, 784])
    request.raw_input_contents.append(np.full((rows, 784), value, np.float32).tobytes())
    return request


class HeldModel:
    """Holds every ONNX call of more than one row until released, and says when one is held."""

    def __init__(self, server: ModelServer) -> None:
        self.model = server.repository.get(None)
        self.original = self.model.run
        self.held = threading.Event()
        self.release = threading.Event()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if len(next(iter(feeds.values()))) > 1:
            self.held.set()
            self.release.wait(30)
        return self.original(feeds)


@pytest.fixture
def held(model_base, monkeypatch) -> Iterator[tuple[ModelServer, HeldModel]]:
    with running_server(model_base) as server:
        held = HeldModel(server)
        monkeypatch.setattr(held.model, "run", held.run)
        try:
            yield server, held
        finally:
            held.release.set()


def test_a_large_request_in_progress_leaves_health_checks_and_small_requests_answered(held) -> None:
    server, model = held
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        large = stub.ModelInfer.future(infer_request(LARGE), timeout=30)
        assert model.held.wait(10), "the large request reached ONNX Runtime"
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live
        small = stub.ModelInfer(infer_request(1), timeout=5)
        assert small.outputs[0].shape[0] == 1
        assert not large.done()
        model.release.set()
        answer = large.result(timeout=30)
        assert [o.shape[0] for o in answer.outputs] == [LARGE] * len(answer.outputs)


@pytest.mark.parametrize("rows", [1, LARGE], ids=["small-on-the-loop", "large-on-a-worker"])
def test_bad_input_gets_invalid_argument_whether_answered_on_the_loop_or_a_worker(server, rows: int) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(infer_request(rows, value=float("nan")), timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "images" in caught.value.details() and "\n" not in caught.value.details()
        assert stub.ModelInfer(infer_request(rows), timeout=30).outputs[0].shape[0] == rows


def test_stopping_the_server_lets_a_request_in_progress_finish(held) -> None:
    server, model = held
    with grpc.insecure_channel(server.grpc_address) as channel:
        large = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer.future(infer_request(LARGE), timeout=30)
        assert model.held.wait(10)
        stopper = threading.Thread(target=server.stop, kwargs={"grace": 10})
        stopper.start()
        threading.Timer(0.3, model.release.set).start()
        answer = large.result(timeout=30)
        stopper.join(30)
    assert not stopper.is_alive()
    assert [o.shape[0] for o in answer.outputs] == [LARGE] * len(answer.outputs)
    with grpc.insecure_channel(server.grpc_address) as channel, pytest.raises(grpc.RpcError) as refused:
        pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=2)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_metrics_report_the_lag_of_both_event_loops(server) -> None:
    deadline = time.monotonic() + 10
    counts: dict[str, float] = {}
    while time.monotonic() < deadline and not (counts.get("rest") and counts.get("grpc")):
        text = httpx.get(server.rest_url + "/metrics").text
        counts = {
            loop: float(line.rsplit(" ", 1)[1])
            for loop in ("rest", "grpc")
            for line in text.splitlines()
            if line.startswith(f'trainflow_event_loop_lag_seconds_count{{loop="{loop}"}}')
        }
        time.sleep(0.05)
    assert counts.get("rest", 0) > 0 and counts.get("grpc", 0) > 0, counts
    assert 'trainflow_event_loop_lag_max_seconds{loop="grpc"}' in text
