"""The one internal data plane every protocol adapter calls: resolve a model, run a signature, account.

Adapters turn their wire format into `{alias: ndarray}` for a signature and back; admission (bounded
concurrency), input checks, the ONNX call and metrics live here once. Admission counts work, not sockets:
adapters read a request completely before asking for a slot, so clients that send slowly hold none. The
adapters (REST on uvicorn's event loop, gRPC on grpc.aio's) run their decoding and inference in the plane's
worker threads, except requests cheap enough to answer on the event loop (`offload`).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from trainflow.cores import usable_cores
from trainflow.export.signature import TensorSpec
from trainflow.serving.errors import InvalidInput, NotFound, ServingError, Unavailable, shown
from trainflow.serving.images import ImageDecoder
from trainflow.serving.metrics import ServingMetrics
from trainflow.serving.repository import ModelRepository
from trainflow.serving.runtime import Feeds, OnnxModel
from trainflow.serving.tensor_specs import expected

Tensors = dict[str, np.ndarray]
DEFAULT_INLINE_MAX_MICROS = 500  # the most CPU a request may hold the event loop for (health checks wait behind it)
_PARSE_SECONDS_PER_BYTE = 5e-9  # JSON numbers parsed, checked and copied; binary tensors cost less
_MIN_BYTES_PER_VALUE = 2  # "0," is the shortest a JSON number gets
MAX_VERSION_DIGITS = 18  # a longer version number is no loaded version's


def numbers_only(body: bytes) -> bool:
    """No encoded images in the body: a few bytes of PNG can take seconds to decode, so those never run inline.

    Images come as `{"b64": ...}` (TF Serving) or BYTES tensors (V2); a JSON `\\u` escape could spell either.
    """
    # the one-byte looks are memchr calls; the keys' searches (~10 us in 16 kB of numbers) run only when they could match
    if b"\\" in body:
        return False
    return not (b"b" in body and b'"b64"' in body) and not (b"B" in body and b'"BYTES"' in body)


def inline_cost(model: OnnxModel, body_bytes: int) -> float:
    """An upper estimate of a request's CPU seconds: its body parsed, and the most rows it can hold run."""
    rows = body_bytes // (_MIN_BYTES_PER_VALUE * max(1, model.values_per_row)) + 1
    return body_bytes * _PARSE_SECONDS_PER_BYTE + rows * model.row_seconds


Result = TypeVar("Result")


def _loaded_count(repository: ModelRepository) -> Callable[[], float]:
    return lambda: len(repository.loaded())


class RequestScope:
    """One admitted inference request, as a context manager: what it resolved and how it ended, for its metrics."""

    __slots__ = ("model", "plane", "protocol", "started")

    def __init__(self, plane: DataPlane, protocol: str) -> None:
        self.plane = plane
        self.protocol = protocol
        self.model: OnnxModel | None = None
        self.started = 0.0

    def __enter__(self) -> RequestScope:
        self.started = time.perf_counter()
        plane = self.plane
        with plane._lock:
            admitted = plane._in_flight < plane.max_concurrency
            if admitted:
                plane._in_flight += 1
        if not admitted:
            plane._record(self, Unavailable.__name__)
            raise Unavailable(f"server busy: {plane.max_concurrency} requests in flight; retry shortly")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        plane = self.plane
        with plane._lock:
            plane._in_flight -= 1
        model = self.model
        if kind is None and model is not None:  # most requests: straight to the tally (`_record` says the same)
            seconds = time.perf_counter() - self.started
            plane.metrics.requests.answered(model.name, str(model.version), self.protocol, seconds)
        elif kind is None or not issubclass(kind, Exception):
            plane._record(self, None)
        else:
            plane._record(self, kind.__name__ if issubclass(kind, ServingError) else "Internal")


class DataPlane:
    """Model lookup, admission control and signature execution shared by all four protocols."""

    def __init__(
        self,
        repositories: list[ModelRepository],
        max_concurrency: int,
        metrics: ServingMetrics,
        images: ImageDecoder,
        inline_seconds: float = DEFAULT_INLINE_MAX_MICROS / 1e6,
    ) -> None:
        self.repositories = {r.name: r for r in repositories}
        self.max_concurrency = max_concurrency
        self.metrics = metrics
        self.images = images
        self.inline_seconds = inline_seconds
        self._in_flight = 0
        self._lock = threading.Lock()
        # A request waiting for its dynamic batch blocks its thread, so batching needs one per admitted request;
        # otherwise a few per core keep the cores busy, and more would only contend for the interpreter lock.
        batching = any(r.config.batching for r in repositories)
        workers = max_concurrency if batching else min(max_concurrency, 2 * usable_cores() + 2)
        self._workers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="infer-work")
        metrics.in_flight.set_function(lambda: self._in_flight)
        for repository in repositories:  # read when /metrics is scraped, like in_flight
            metrics.loaded.labels(repository.name).set_function(_loaded_count(repository))

    def ready(self) -> bool:
        """True when every model has a version loaded."""
        return all(r.ready() for r in self.repositories.values())

    def repository(self, name: str) -> ModelRepository:
        """The named model's repository; NotFound naming the models served."""
        found = self.repositories.get(name) if isinstance(name, str) else None
        if found is None:
            served = ", ".join(f"'{n}'" for n in sorted(self.repositories))
            raise NotFound(f"model {shown(name)} is not served here: this server serves {served}")
        return found

    def versions(self, name: str) -> list[OnnxModel]:
        """Every loaded version of the named model, oldest first (NotFound / Unavailable as `model`)."""
        self.model(name)
        return self.repository(name).loaded()

    @property
    def in_flight(self) -> int:
        """Inference requests admitted and not finished."""
        return self._in_flight

    async def offload(
        self, model: OnnxModel, size: int, numbers: Callable[[], bool], work: Callable[..., Result], *args: object
    ) -> Result:
        """Run a request's CPU work (decoding, inference, encoding) in a worker thread, keeping the event loop free.

        A request estimated to cost less than `inline_seconds` of CPU runs on the event loop instead,
        skipping the hand-off: `size` bytes for a fast model, with no batch to wait for, that `numbers()` finds
        free of encoded images (asked last: it scans the request, 0.25 ms for 8 MB of JSON).
        """
        if self.runs_inline(model, size, numbers):
            return work(*args)
        return await self.in_worker(work, *args)

    def runs_inline(self, model: OnnxModel, size: int, numbers: Callable[[], bool]) -> bool:
        """Whether `offload` would run this request on the event loop (an adapter may then skip its coroutine)."""
        return model.batcher is None and inline_cost(model, size) <= self.inline_seconds and numbers()

    async def in_worker(self, work: Callable[..., Result], *args: object) -> Result:
        """Run `work(*args)` in one of the plane's worker threads."""
        return await asyncio.get_running_loop().run_in_executor(self._workers, functools.partial(work, *args))

    def close(self) -> None:
        """Stop the worker threads once the requests they hold are done."""
        self._workers.shutdown(wait=False, cancel_futures=True)

    def model(self, name: str, version: int | str | None = None) -> OnnxModel:
        """The named model at `version` (latest when None/empty); NotFound for anything else."""
        repository = self.repository(name)
        if version in (None, "", 0):
            return repository.get(None)
        if isinstance(version, str) and not (
            version.isascii() and version.isdigit() and len(version) <= MAX_VERSION_DIGITS
        ):  # int() refuses more than 4,300 digits with a ValueError: that would be a 500, not a 404
            raise NotFound(f"model '{name}' has no version {shown(version)}: versions are positive integers")
        return repository.get(int(version))

    def request(self, protocol: str) -> RequestScope:
        """Admit one inference request (`with`; Unavailable when `max_concurrency` are in flight) and record it."""
        return RequestScope(self, protocol)

    def _record(self, scope: RequestScope, error: str | None) -> None:
        model = scope.model
        self.metrics.observe(
            model.name if model else "-",
            str(model.version) if model else "-",
            scope.protocol,
            time.perf_counter() - scope.started,
            error,
        )

    def prepare(self, model: OnnxModel, signature_name: str, inputs: Tensors) -> Feeds:
        """Check the inputs against the signature; returns the graph's feeds."""
        checks = model.input_checks(signature_name)
        if inputs.keys() != checks.keys():
            raise _input_mismatch(signature_name, model.signature_def(signature_name).inputs, inputs)
        feeds = {check.spec.onnx_name: check(inputs[alias]) for alias, check in checks.items()}
        if len(feeds) > 1:
            specs = {alias: check.spec for alias, check in checks.items()}
            batched = {a: len(feeds[spec.onnx_name]) for a, spec in specs.items() if spec.shape and spec.shape[0] == -1}
            if len(set(batched.values())) > 1:
                raise InvalidInput(
                    f"inputs hold different numbers of examples ({shown(batched)}): send the same number "
                    "of rows for every input"
                )
        return feeds

    def finish(self, model: OnnxModel, signature_name: str, raw: Tensors) -> Tensors:
        """ONNX outputs -> the signature's outputs; a class-name output holds every class name, in label order
        like its scores (classify sorts the pairs by score)."""
        outputs = model.signature_def(signature_name).outputs
        result: Tensors = {alias: raw[spec.onnx_name] for alias, spec in outputs.items() if spec.dtype != "string"}
        if len(result) == len(outputs):
            return result
        rows = len(next(iter(result.values()))) if result else 0
        labels = np.array(model.signature.class_labels, dtype=object)
        return {
            alias: result[alias] if spec.dtype != "string" else np.tile(labels, (rows, 1))
            for alias, spec in outputs.items()
        }

    def run(self, model: OnnxModel, signature_name: str, inputs: Tensors) -> Tensors:
        """Run a signature in the calling thread (a gRPC or REST worker), waiting for its batch if batching is on."""
        feeds = self.prepare(model, signature_name, inputs)
        return self.finish(model, signature_name, model.infer(feeds))


def _input_mismatch(signature_name: str, specs: dict[str, TensorSpec], inputs: Tensors) -> InvalidInput:
    """What is wrong with inputs that are not exactly the signature's: the first missing one, else the extra ones."""
    missing = [alias for alias in specs if alias not in inputs]
    if missing:
        return InvalidInput(
            f"missing input '{missing[0]}' for signature '{signature_name}': expected {expected(specs[missing[0]])}"
        )
    extra = sorted(set(inputs) - set(specs))
    return InvalidInput(
        f"unknown input {', '.join(shown(e) for e in extra)} for signature '{signature_name}': "
        f"the inputs are {', '.join(repr(a) for a in specs)}"
    )
