"""Prometheus metrics of one server: latency histograms and request/error counters per model and protocol."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServingMetrics:
    """A registry of its own, so that two servers in one process do not share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram("trainflow_request_duration_seconds", "Inference request latency.",
                                 ("model", "version", "protocol"), registry=self.registry, buckets=_LATENCY_BUCKETS)
        self.requests = Counter("trainflow_requests", "Inference requests answered.",
                                ("model", "protocol", "code"), registry=self.registry)
        self.errors = Counter("trainflow_request_errors", "Inference requests that failed, by error kind.",
                              ("model", "protocol", "error"), registry=self.registry)
        self.in_flight = Gauge("trainflow_requests_in_flight", "Inference requests being served now.",
                               registry=self.registry)
        self.loaded = Gauge("trainflow_model_versions_loaded", "Model versions loaded.", ("model",),
                            registry=self.registry)

    def observe(self, model: str, version: str, protocol: str, seconds: float, error: str | None) -> None:
        """Record one finished request; `error` is the error kind, None for success."""
        if error is None:
            self.latency.labels(model, version, protocol).observe(seconds)
            self.requests.labels(model, protocol, "ok").inc()
        else:
            self.requests.labels(model, protocol, "error").inc()
            self.errors.labels(model, protocol, error).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
