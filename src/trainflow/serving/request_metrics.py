"""Inference requests' latency histogram and request/error counters: one lock and a few additions per request.

prometheus_client's Histogram and Counter take a lock per bucket, sum and count, through several Python calls
each (~2 us a request, the JSON floor's whole budget for its reply). Here each request adds to plain lists
under one lock, and the families are built when /metrics is scraped, with the same names, labels and buckets.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BUCKET_NAMES = [floatToGoString(b) for b in LATENCY_BUCKETS] + ["+Inf"]


class RequestMetrics(Collector):
    """`trainflow_request_duration_seconds` (answered requests), `trainflow_requests` and
    `trainflow_request_errors`, per model (and version for the latency) and protocol."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (model, version, protocol) -> a count per bucket (the last one +Inf), then the sum of seconds
        self._answered: dict[tuple[str, str, str], list[float]] = {}
        self._errors: dict[tuple[str, str, str], int] = {}  # (model, protocol, error kind) -> count

    def answered(self, model: str, version: str, protocol: str, seconds: float) -> None:
        """One request answered in `seconds`."""
        bucket = bisect.bisect_left(LATENCY_BUCKETS, seconds)  # the first bound >= seconds: Prometheus' "le"
        key = (model, version, protocol)
        with self._lock:
            tally = self._answered.get(key)
            if tally is None:
                tally = self._answered[key] = [0] * len(_BUCKET_NAMES) + [0.0]
            tally[bucket] += 1
            tally[-1] += seconds

    def failed(self, model: str, protocol: str, error: str) -> None:
        """One request that ended in an error of kind `error`."""
        key = (model, protocol, error)
        with self._lock:
            self._errors[key] = self._errors.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            answered = {key: list(tally) for key, tally in self._answered.items()}
            errors = dict(self._errors)
        latency = HistogramMetricFamily(
            "trainflow_request_duration_seconds", "Inference request latency.", labels=("model", "version", "protocol")
        )
        requests = CounterMetricFamily(
            "trainflow_requests", "Inference requests answered.", labels=("model", "protocol", "code")
        )
        failures = CounterMetricFamily(
            "trainflow_request_errors",
            "Inference requests that failed, by error kind.",
            labels=("model", "protocol", "error"),
        )
        ok: dict[tuple[str, str], int] = {}
        for (model, version, protocol), tally in answered.items():
            counts, total = tally[:-1], tally[-1]
            cumulative, running = [], 0
            for name, count in zip(_BUCKET_NAMES, counts, strict=True):
                running += int(count)
                cumulative.append((name, running))
            latency.add_metric([model, version, protocol], cumulative, total)
            ok[(model, protocol)] = ok.get((model, protocol), 0) + running
        failed: dict[tuple[str, str], int] = {}
        for (model, protocol, error), count in errors.items():
            failures.add_metric([model, protocol, error], count)
            failed[(model, protocol)] = failed.get((model, protocol), 0) + count
        for (model, protocol), count in ok.items():
            requests.add_metric([model, protocol, "ok"], count)
        for (model, protocol), count in failed.items():
            requests.add_metric([model, protocol, "error"], count)
        yield from (latency, requests, failures)
