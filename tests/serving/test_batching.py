"""Dynamic batching: concurrent requests share ONNX Runtime calls and each gets its own rows back."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from trainflow.serving.batching import BatchingConfig, DynamicBatcher


def test_queued_requests_run_as_one_batch_and_get_their_own_rows() -> None:
    calls: list[int] = []
    release = threading.Event()

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        release.wait(5)  # hold the worker so that the rest queue up behind the first request
        calls.append(len(inputs["x"]))
        return {"sum": inputs["x"].sum(axis=1) + inputs["k"]}

    def request(value: float, rows: int = 1) -> dict[str, np.ndarray]:  # two inputs, batched together
        return {"x": np.full((rows, 4), value, np.float32), "k": np.full(rows, 100, np.int64)}

    batcher = DynamicBatcher(run, BatchingConfig(max_batch_size=8, timeout_s=0.05), "test")
    futures = [batcher.submit(request(float(i))) for i in range(9)]
    release.set()
    assert [f.result(5)["sum"].tolist() for f in futures] == [[4.0 * i + 100] for i in range(9)]
    assert sum(calls) == 9 and len(calls) <= 3 and max(calls) <= 8
    batcher.close()
    assert batcher.submit(request(1.0, rows=2)).result(5)["sum"].tolist() == [104.0, 104.0]  # closed: runs at once


def test_batches_run_on_as_many_threads_as_configured_while_the_next_one_gathers() -> None:
    both_running = threading.Barrier(2, timeout=5)

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        both_running.wait()  # returns only when two batches are in ONNX Runtime at once
        return {"y": inputs["x"] * 2}

    batcher = DynamicBatcher(run, BatchingConfig(max_batch_size=1, timeout_s=0.001, threads=2), "test")
    futures = [batcher.submit({"x": np.full((1, 2), float(i), np.float32)}) for i in range(4)]
    assert [f.result(10)["y"].tolist() for f in futures] == [[[2.0 * i] * 2] for i in range(4)]
    batcher.close()
    for thread in batcher.threads:
        thread.join(5)
        assert not thread.is_alive()


def test_batched_server_answers_concurrent_requests_like_an_unbatched_one(start_server, model_base, test_set) -> None:
    images = test_set[0][:32].reshape(32, -1)
    with start_server(model_base) as plain:
        body = {"signature_name": "predict_images", "instances": images.tolist()}
        expected = [
            p["classes"]
            for p in httpx.post(plain.rest_url + "/v1/models/mnist:predict", json=body).json()["predictions"]
        ]
    with start_server(model_base, max_batch_size=16, batch_timeout_micros=2000) as batched:

        def one(index: int) -> int:
            single = {"signature_name": "predict_images", "instances": [images[index].tolist()]}
            response = httpx.post(batched.rest_url + "/v1/models/mnist:predict", json=single, timeout=10)
            assert response.status_code == 200, response.text
            return response.json()["predictions"][0]["classes"]

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(one, range(32))) == expected


class CloseDuringSubmit:
    """The batcher's queue, but a request's put first lets the batcher close and its threads end (0.5 s each)."""

    def __init__(self, batcher: DynamicBatcher) -> None:
        self.batcher, self.inner = batcher, batcher.queue
        self.closer = threading.Thread(target=self.batcher.close)

    def put(self, item: object) -> None:
        if isinstance(item, tuple):
            self.closer.start()
            for thread in self.batcher.threads:
                thread.join(0.5)
        self.inner.put(item)

    def get(self, timeout: float | None = None) -> object:
        return self.inner.get(timeout=timeout)

    def get_nowait(self) -> object:
        return self.inner.get_nowait()


def test_a_request_submitted_while_the_batcher_closes_is_still_answered() -> None:
    batcher = DynamicBatcher(lambda inputs: {"y": inputs["x"] + 1}, BatchingConfig(4, 0.001, threads=2), "test")
    batcher.queue = queued = CloseDuringSubmit(batcher)  # type: ignore[assignment]
    future = batcher.submit({"x": np.zeros((1, 2), np.float32)})
    assert future.result(timeout=5)["y"].tolist() == [[1.0, 1.0]]
    queued.closer.join(5)  # the close waited for the submit: it may end after the request is answered
    assert batcher.closed
