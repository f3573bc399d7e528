"""Dynamic batching: requests that arrive within a short window run as one ONNX Runtime call.

Several threads take turns: one gathers the next batch while the others run the batches they gathered, so a
batched model keeps as many cores busy as an unbatched one does with concurrent requests (each session runs a
call on `--threads` intra-op threads, one by default).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

Outputs = dict[str, np.ndarray]
Inputs = dict[str, np.ndarray]  # graph input name -> batch; every batch has the same number of rows
_STOP = object()


@dataclass(frozen=True)
class BatchingConfig:
    """`max_batch_size` rows per call at most; wait up to `timeout_s` for more after the first request; up to
    `threads` batches run at once."""

    max_batch_size: int
    timeout_s: float
    threads: int = 1


class DynamicBatcher:
    """Worker threads that gather queued requests into batches, one gatherer at a time, and split the results back."""

    def __init__(self, run: Callable[[Inputs], Outputs], config: BatchingConfig, name: str) -> None:
        self.run = run
        self.config = config
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.closed = False
        self._closing = threading.Lock()
        self._gathering = threading.Lock()
        self._stopping = False  # read and written under _gathering
        self.threads = [
            threading.Thread(target=self._work, name=f"batcher-{name}-{i}", daemon=True)
            for i in range(max(1, config.threads))
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, inputs: Inputs) -> Future[Outputs]:
        """Queue `inputs` (N rows each) for the next batch; a closed batcher runs them at once instead."""
        future: Future[Outputs] = Future()
        with self._closing:  # queued before the stop marker, or not at all: nothing lands after the final drain
            if not self.closed:
                self.queue.put((inputs, future))
                return future
        _settle(future, self.run, inputs)  # an evicted version still finishes what was sent to it
        return future

    def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        with self._closing:
            self.closed = True
            self.queue.put(_STOP)

    def _gather(self, first: tuple[Inputs, Future]) -> tuple[list[tuple[Inputs, Future]], bool]:
        batch, rows = [first], _rows(first[0])
        deadline = time.monotonic() + self.config.timeout_s
        while rows < self.config.max_batch_size:
            left = deadline - time.monotonic()
            try:
                item = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
            rows += _rows(item[0])
        return batch, False

    def _work(self) -> None:
        while True:
            with self._gathering:
                if self._stopping:
                    return
                item = self.queue.get()
                if item is _STOP:
                    batches, self._stopping = [], True
                else:
                    batch, self._stopping = self._gather(item)
                    batches = [batch]
                if self._stopping:  # anything queued after the stop marker runs on its own
                    batches += [[left] for left in self._drain()]
            for batch in batches:
                self._run_batch(batch)

    def _drain(self) -> list[tuple[Inputs, Future]]:
        left: list[tuple[Inputs, Future]] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return left
            if item is not _STOP:
                left.append(item)

    def _run_batch(self, batch: list[tuple[Inputs, Future]]) -> None:
        if len(batch) == 1:
            _settle(batch[0][1], self.run, batch[0][0])
            return
        try:
            outputs = self.run({name: np.concatenate([inputs[name] for inputs, _ in batch]) for name in batch[0][0]})
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the same error
            for _, future in batch:
                future.set_exception(exc)
            return
        start = 0
        for inputs, future in batch:
            end = start + _rows(inputs)
            future.set_result({name: value[start:end] for name, value in outputs.items()})
            start = end


def _rows(inputs: Inputs) -> int:
    return len(next(iter(inputs.values())))


def _settle(future: Future[Outputs], run: Callable[[Inputs], Outputs], inputs: Inputs) -> None:
    try:
        future.set_result(run(inputs))
    except Exception as exc:  # noqa: BLE001 - every waiting request gets the error the model raised
        future.set_exception(exc)
