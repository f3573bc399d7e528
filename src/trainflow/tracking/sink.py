"""Curves to MLflow in batches, from a background thread: a slow or absent server never stalls training.

`record` appends to a bounded buffer and returns (microseconds); a thread sends what is buffered with
one `log_batch` a second, over one kept-alive connection (`log_batch.py`). While the server does not answer,
metrics wait in the buffer and go when it is back; past `MAX_PENDING` the oldest are dropped, with one warning
for the run, and the run is tagged incomplete once the server answers again (or the step's log says so if it
never does). At a run's last step, `record` waits (briefly) until the server has acknowledged every point.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import threading
import time
from collections import deque
from contextlib import suppress
from typing import Any

from trainflow.tracking import step_run_id, tracking_uri
from trainflow.tracking.client import client, reason_of, redacted
from trainflow.tracking.log_batch import LogBatchPoster

log = logging.getLogger(__name__)

MAX_PENDING = 100_000  # metric points held while the server is away (about 10 MB)
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch
FLUSH_SECONDS = 1.0
CLOSE_SECONDS = 5.0
LAST_STEP_SECONDS = 2.0
REQUEST_SECONDS = 5.0  # what the end of a step waits at most for the last batch
EXIT_SECONDS = 5.0  # what a process ending with os._exit waits at most for its sinks: a server down never stalls it
INCOMPLETE_TAG = "trainflow.tracking"


class MetricSink:
    """Buffers (key, value, step, time) points for one run and sends them in batches."""

    def __init__(self, uri: str, run_id: str, flush_seconds: float = FLUSH_SECONDS, max_pending: int = MAX_PENDING):
        self.uri, self.run_id = uri, run_id
        self.flush_seconds = flush_seconds
        self.pending: deque[tuple[str, float, int, int]] = deque()
        self.max_pending = max_pending
        self.dropped = 0
        self.failing = False
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)  # notified when a batch taken is sent or put back
        self._in_flight = 0  # points taken and being sent
        self._flushing = threading.Lock()  # one sender at a time: the thread, or close() after it timed out
        self._poster: LogBatchPoster | None = None  # else MLflow's own client sends the batches (and imports mlflow)
        with suppress(ValueError):  # not an http(s) server's URI: MLflow's client opens the store
            self._poster = LogBatchPoster(uri, REQUEST_SECONDS)
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mlflow-sink", daemon=True)
        self._thread.start()

    def record(self, step: int, metrics: dict[str, float], when: float | None = None) -> None:
        """Queue one point per metric at `step` (never blocks on the network)."""
        ms = int((when or time.time()) * 1000)
        with self._lock:
            for key, value in metrics.items():
                if len(self.pending) >= self.max_pending:
                    self.pending.popleft()
                    self._drop_warning()
                self.pending.append((key, float(value), int(step), ms))

    def _drop_warning(self) -> None:
        self.dropped += 1
        if self.dropped == 1:
            log.warning(
                "MLflow at %s has not answered for a while: dropping the oldest curve points of run %s "
                "(more than %d waiting); the run is marked incomplete",
                redacted(self.uri),
                self.run_id,
                self.max_pending,
            )

    def _take(self) -> list[tuple[str, float, int, int]]:
        with self._lock:
            batch = [self.pending.popleft() for _ in range(min(MAX_BATCH, len(self.pending)))]
            self._in_flight = len(batch)
            return batch

    def _sent(self) -> None:
        with self._lock:
            self._in_flight = 0
            self._settled.notify_all()

    def _put_back(self, batch: list[tuple[str, float, int, int]]) -> None:
        with self._lock:
            self.pending.extendleft(reversed(batch))
            while len(self.pending) > self.max_pending:
                self.pending.popleft()
                self._drop_warning()
            self._in_flight = 0
            self._settled.notify_all()

    def flush_once(self) -> bool:
        """Send what is buffered; False if the server did not take it (it stays buffered)."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> bool:
        while batch := self._take():
            try:
                self._send(batch)
            except Exception as exc:  # noqa: BLE001 - a server away is retried later, whatever the client raised
                was_failing, self.failing = self.failing, True  # before the batch is back: a drain stops waiting
                self._put_back(batch)
                if not was_failing:
                    log.warning(
                        "MLflow at %s did not take run %s's metrics (%s): keeping them to send later",
                        redacted(self.uri),
                        self.run_id,
                        reason_of(exc),
                    )
                return False
            self._sent()
        if self.failing:
            log.warning("MLflow at %s answers again: run %s's buffered metrics sent", redacted(self.uri), self.run_id)
        self.failing = False
        return True

    def _send(self, batch: list[tuple[str, float, int, int]]) -> None:
        """One log_batch: over MLflow's REST API where the server is http(s) (a worker then never imports mlflow,
        which takes seconds), else through MlflowClient."""
        if self._poster is not None:
            self._poster.post(
                self.run_id, [{"key": k, "value": v, "timestamp": ms, "step": s} for k, v, s, ms in batch]
            )
            return
        from mlflow.entities import Metric

        client(self.uri).log_batch(self.run_id, metrics=[Metric(k, v, ms, s) for k, v, s, ms in batch])

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush_once()

    def drain(self, timeout: float) -> bool:
        """Have the thread send what is buffered now, waiting at most `timeout` for the server to take it (or refuse
        it); True if everything recorded has been taken."""
        self._wake.set()
        with self._settled:
            self._settled.wait_for(lambda: not (self.pending or self._in_flight) or self.failing, timeout)
            return not (self.pending or self._in_flight)

    def close(self, timeout: float = CLOSE_SECONDS) -> bool:
        """Send the rest within `timeout`; True if every point reached the server."""
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            if not self.flush_once():
                time.sleep(0.2)
        if self._poster is not None:
            self._poster.close()
        complete = not self.pending and not self.dropped
        if not complete:
            log.warning(
                "tracking of run %s is incomplete: %d curve points dropped, %d not sent",
                self.run_id,
                self.dropped,
                len(self.pending),
            )
            mark_incomplete(self.uri, self.run_id, f"{self.dropped + len(self.pending)} curve points not sent")
        return complete


def mark_incomplete(uri: str, run_id: str, why: str) -> None:
    """Tag the run incomplete, if the server answers now (the step's log holds the warning either way)."""
    try:
        client(uri).set_tag(run_id, INCOMPLETE_TAG, f"incomplete: {why}")
    except Exception:  # noqa: BLE001 - the warning in the step's log already says it
        log.debug("could not tag run %s incomplete", run_id)


_sinks: dict[tuple[int, str], MetricSink] = {}  # by process too: a forked worker gets its own thread
_sinks_lock = threading.Lock()


def sink_for_this_process() -> MetricSink | None:
    """The process's sink for its step's run; None when tracking is off or no step run is open."""
    run_id = step_run_id()
    if not run_id:
        return None
    with _sinks_lock:
        sink = _sinks.get((os.getpid(), run_id))
        if sink is None:
            sink = _sinks[(os.getpid(), run_id)] = MetricSink(tracking_uri(), run_id)
            atexit.register(sink.close)
            # a multiprocessing worker ends with os._exit, past atexit: its own finalizers still run
            multiprocessing.util.Finalize(None, sink.close, exitpriority=10)
        return sink


def close_sink(run_id: str, timeout: float = CLOSE_SECONDS) -> bool:
    """Flush and stop the sink of `run_id` in this process, if there is one; True if nothing was lost."""
    with _sinks_lock:
        sink = _sinks.pop((os.getpid(), run_id), None)
    if sink is None:
        return True
    atexit.unregister(sink.close)
    return sink.close(timeout)


def close_sinks(timeout: float = EXIT_SECONDS) -> bool:
    """Flush and stop every sink of this process within `timeout` in all (each one's close, with its incomplete tag,
    on a thread this does not wait for past the bound); True if every point reached the server in time."""
    with _sinks_lock:
        mine = [_sinks.pop(key) for key in [k for k in _sinks if k[0] == os.getpid()]]
    if not mine:
        return True
    for sink in mine:
        atexit.unregister(sink.close)
    outcome: list[bool] = []
    deadline = time.monotonic() + timeout

    def close_all() -> None:
        outcome.extend(sink.close(max(0.1, deadline - time.monotonic())) for sink in mine)

    closer = threading.Thread(target=close_all, name="mlflow-sink-exit", daemon=True)
    closer.start()
    closer.join(timeout)
    return len(outcome) == len(mine) and all(outcome)


def record(step: int, metrics: dict[str, Any], last: bool = False) -> None:
    """Queue the numeric `metrics` at `step` for the step's run (nothing when tracking is off). At the `last` step
    wait a moment (`LAST_STEP_SECONDS` at most) for them to be sent: a training worker ends with os._exit."""
    sink = sink_for_this_process()
    if sink is not None and metrics:
        sink.record(step, metrics)
        if last:
            sink.drain(LAST_STEP_SECONDS)
