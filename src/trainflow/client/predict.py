"""Ask a model server about examples: one call for a batch, or the example's one-example-per-request evaluation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from trainflow.client.errors import ClientError, ServerUnreachable
from trainflow.client.images import image_layout, to_model_input
from trainflow.client.transports import TRANSPORTS

PROTOCOLS = tuple(TRANSPORTS)
DEFAULT_PORTS = {"grpc": 9000, "v2-grpc": 9000, "rest": 8501, "v2-rest": 8501}
MAX_NUM_TESTS = 10000


@dataclass(frozen=True)
class Prediction:
    """The predicted class of one example and the score of every class."""

    cls: int
    scores: tuple[float, ...]

    @property
    def score(self) -> float:
        return self.scores[self.cls]


def default_server(protocol: str) -> str:
    return f"127.0.0.1:{DEFAULT_PORTS[protocol]}"


class PredictClient:
    """A connection to one server in one protocol; thread-safe, reuse it for many requests."""

    def __init__(
        self,
        server: str,
        protocol: str = "grpc",
        model_name: str = "mnist",
        timeout: float = 10.0,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        if protocol not in TRANSPORTS:
            raise ClientError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
        self.server = server.removeprefix("http://").rstrip("/")
        self.protocol = protocol
        self.transport = TRANSPORTS[protocol](self.server, model_name, timeout)
        self._input_shape = input_shape

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape as the model takes it, read from its metadata on first use."""
        if self._input_shape is None:
            self._input_shape = self.transport.input_shape()
        return self._input_shape

    def predict(self, examples: np.ndarray) -> list[Prediction]:
        """One example or a batch in any layout of the model's input size -> one Prediction each.

        Images may be uint8 (0-255) or float (0-1); feature vectors are sent as they are.
        """
        shape = self.input_shape
        batch = to_model_input(examples, shape, pixels=image_layout(shape) is not None)
        classes, scores = self.transport.predict(batch)
        if len(classes) != len(batch):
            raise ClientError(f"the server answered {len(classes)} predictions for {len(batch)} examples")
        return [Prediction(int(c), tuple(float(s) for s in row)) for c, row in zip(classes, scores)]

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> PredictClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def predict_images(
    server: str, protocol: str, images: np.ndarray, model_name: str = "mnist", timeout: float = 10.0
) -> list[Prediction]:
    """One request with all `images` (any examples); opens and closes its own connection."""
    with PredictClient(server, protocol, model_name, timeout) as client:
        return client.predict(images)


@dataclass(frozen=True)
class Evaluation:
    """What the example's client reported: answers, wrong ones, failed requests, time taken."""

    total: int
    wrong: int
    failed: int
    seconds: float

    @property
    def error_rate(self) -> float:
        return (self.wrong + self.failed) / self.total if self.total else 0.0


def evaluate(
    client: PredictClient,
    images: np.ndarray,
    labels: np.ndarray,
    concurrency: int = 1,
    on_answer: Callable[[int, Prediction | None], None] | None = None,
) -> Evaluation:
    """Send one image per request, `concurrency` at a time; `on_answer(index, prediction or None)` per answer."""
    if not 0 < len(images) <= MAX_NUM_TESTS:
        raise ClientError(f"{len(images)} test images: use between 1 and {MAX_NUM_TESTS}")
    lock = threading.Lock()
    counts = {"wrong": 0, "failed": 0}

    def one(index: int, first: bool = False) -> None:
        try:
            prediction: Prediction | None = client.predict(images[index : index + 1])[0]
        except ServerUnreachable:
            if first:  # no server at the address: one clear error instead of N failed requests
                raise
            prediction = None
        except ClientError:
            prediction = None
        with lock:
            if prediction is None:
                counts["failed"] += 1
            elif prediction.cls != int(labels[index]):
                counts["wrong"] += 1
            if on_answer is not None:
                on_answer(index, prediction)

    started = time.perf_counter()
    one(0, first=True)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        list(pool.map(one, range(1, len(images))))
    return Evaluation(len(images), counts["wrong"], counts["failed"], time.perf_counter() - started)
