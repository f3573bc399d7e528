"""Prometheus metrics of one server: latency histograms and request/error counters per model and protocol."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from trainflow.serving.request_metrics import RequestMetrics

_LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
LAG_INTERVAL_S = 0.05


class ServingMetrics:
    """A registry of its own, so that two servers in one process do not share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestMetrics()  # latency, requests and errors: one lock a request
        self.registry.register(self.requests)
        self.in_flight = Gauge(
            "trainflow_requests_in_flight", "Inference requests being served now.", registry=self.registry
        )
        self.loaded = Gauge(
            "trainflow_model_versions_loaded", "Model versions loaded.", ("model",), registry=self.registry
        )
        self.loop_lag = Histogram(
            "trainflow_event_loop_lag_seconds",
            f"How late an event loop (rest: uvicorn's, grpc: grpc.aio's) woke up for a {LAG_INTERVAL_S:g} s timer.",
            ("loop",),
            registry=self.registry,
            buckets=_LAG_BUCKETS,
        )
        self.loop_lag_max = Gauge(
            "trainflow_event_loop_lag_max_seconds",
            "An event loop's worst lag since the server started.",
            ("loop",),
            registry=self.registry,
        )

    def observe(self, model: str, version: str, protocol: str, seconds: float, error: str | None) -> None:
        """Record one finished request; `error` is the error kind, None for success."""
        if error is None:
            self.requests.answered(model, version, protocol, seconds)
        else:
            self.requests.failed(model, protocol, error)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


async def watch_event_loop(metrics: ServingMetrics, name: str, interval: float = LAG_INTERVAL_S) -> None:
    """Sleep `interval` over and over and record how late each wake-up is: the loop's lag, until cancelled."""
    loop = asyncio.get_running_loop()
    lags, worst_lag = metrics.loop_lag.labels(name), metrics.loop_lag_max.labels(name)
    worst = 0.0
    while True:
        start = loop.time()
        await asyncio.sleep(interval)
        lag = max(0.0, loop.time() - start - interval)
        lags.observe(lag)
        if lag > worst:
            worst = lag
            worst_lag.set(lag)
