"""/metrics counts every inference request once: answered ones in the latency histogram and `code="ok"`,
failed ones by error kind, per model, version and protocol."""

from __future__ import annotations

import re

import httpx

INFER = "/v2/models/mnist/infer"
PREDICT = "/v1/models/mnist:predict"
IMAGE = [0.5] * 784
BOUNDS = [
    "0.0002",
    "0.0005",
    "0.001",
    "0.002",
    "0.005",
    "0.01",
    "0.025",
    "0.05",
    "0.1",
    "0.25",
    "0.5",
    "1.0",
    "2.5",
    "+Inf",
]


def samples(server) -> dict[str, float]:
    """Every trainflow_request* sample of /metrics: 'name{labels}' -> value."""
    text = httpx.get(server.rest_url + "/metrics").text
    found = {}
    for line in text.splitlines():
        match = re.match(r"(trainflow_request[a-z_]*\{[^}]*\}) (\S+)$", line)
        if match and "_created" not in match[1]:
            found[match[1]] = float(match[2])
    return found


def test_metrics_count_answered_and_failed_requests_by_model_version_protocol_and_kind(server) -> None:
    good = {"inputs": [{"name": "images", "shape": [1, 784], "datatype": "FP32", "data": IMAGE}]}
    for _ in range(5):
        assert httpx.post(server.rest_url + INFER, json=good).status_code == 200
    for _ in range(2):
        assert httpx.post(server.rest_url + PREDICT, json={"instances": [IMAGE]}).status_code == 200
    bad = {"inputs": [{"name": "images", "shape": [1, 784], "datatype": "FP32", "data": IMAGE[:10]}]}
    for _ in range(3):
        assert httpx.post(server.rest_url + INFER, json=bad).status_code == 400
    assert httpx.post(server.rest_url + "/v2/models/other/infer", json=good).status_code == 404

    found = samples(server)
    v2 = {"model": "mnist", "protocol": "v2-rest"}
    assert found[key("trainflow_requests_total", **v2, code="ok")] == 5
    assert found[key("trainflow_requests_total", **v2, code="error")] == 3
    assert found[key("trainflow_requests_total", model="mnist", protocol="tfs-rest", code="ok")] == 2
    assert found[key("trainflow_request_errors_total", **v2, error="InvalidInput")] == 3
    assert found[key("trainflow_request_errors_total", model="-", protocol="v2-rest", error="NotFound")] == 1
    latency = {**v2, "version": "1"}
    assert found[key("trainflow_request_duration_seconds_count", **latency)] == 5
    assert found[key("trainflow_request_duration_seconds_bucket", **latency, le="+Inf")] == 5
    assert 0 < found[key("trainflow_request_duration_seconds_sum", **latency)] < 60
    buckets = [found[key("trainflow_request_duration_seconds_bucket", **latency, le=le)] for le in BOUNDS]
    assert buckets == sorted(buckets) and buckets[-1] == 5, buckets  # cumulative


def key(name: str, **labels: str) -> str:
    """A sample's name as /metrics writes it: labels in name order."""
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
