"""The fast V2 infer path (`v2_fast.py`) answers exactly what the general adapter answers.

Two servers load the same model in this process; one REST app answers every V2 infer request with the general
adapter, the other puts the fast path in front of it. A corpus of valid and hostile requests goes to both: status,
headers and body must be the same byte for byte, /metrics must count the same, and the fast path must have
answered the usual requests itself (and declined every other one to the general adapter).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from model_files import publish

from trainflow.export.signature import image_classifier_signature
from trainflow.serving.dataplane import DataPlane
from trainflow.serving.rest_app import build_rest_app
from trainflow.serving.rest_io import BodyLimits
from trainflow.serving.server import ModelServer, ServerConfig
from trainflow.serving.v2_fast import V2FastInfer

LIMITS = BodyLimits(max_bytes=60_000, timeout_s=5.0, max_buffered_bytes=480_000)
INFER = "/v2/models/mnist/infer"
IMAGE = np.random.default_rng(3).random(784, dtype=np.float32)
PIXELS = IMAGE.tolist()


def v2(data: object = None, **tensor: object) -> bytes:
    """A V2 JSON request of one tensor: the usual image unless `tensor`/`data` say otherwise."""
    entry = {"name": "images", "datatype": "FP32", "shape": [1, 784], "data": PIXELS if data is None else data}
    return json.dumps({"inputs": [{**entry, **tensor}]}).encode()


def with_pixel(value: str) -> bytes:
    """The usual JSON request with its first pixel's text replaced by `value` (raw JSON)."""
    return v2().replace(json.dumps(PIXELS[0]).encode(), value.encode(), 1)


def binary(raw: bytes | None = None, size: object = None, **tensor: object) -> tuple[dict[str, str], bytes]:
    """A V2 binary-extension request: its Inference-Header-Content-Length and body."""
    raw = IMAGE.tobytes() if raw is None else raw
    entry = {"name": "images", "datatype": "FP32", "shape": [1, 784], **tensor}
    entry["parameters"] = {"binary_data_size": len(raw) if size is None else size}
    header = json.dumps({"inputs": [entry]}).encode()
    return {"inference-header-content-length": str(len(header))}, header + raw


def header_length(value: str) -> dict[str, str]:
    return {"inference-header-content-length": value}


def inputs(*tensors: dict) -> bytes:
    return json.dumps({"inputs": list(tensors)}).encode()


TENSOR = json.loads(v2())["inputs"][0]
BINARY_HEADERS, BINARY_BODY = binary()
NAN_BYTES = struct.pack("<f", math.nan) + IMAGE.tobytes()[4:]

# (label, method, path, headers, body or body chunks, answered by the fast path itself)
Request = tuple[str, str, str, dict[str, str], "bytes | list[bytes]", bool]
CORPUS: list[Request] = [
    ("json image", "POST", INFER, {}, v2(), True),
    ("json image as [1, 28, 28]", "POST", INFER, {}, v2(shape=[1, 28, 28]), True),
    ("json image as [1, 1, 28, 28]", "POST", INFER, {}, v2(shape=[1, 1, 28, 28]), True),
    ("two json images", "POST", INFER, {}, v2(PIXELS * 2, shape=[2, 784]), True),
    ("whole numbers", "POST", INFER, {}, v2([0, 1] * 392), True),
    ("with an id", "POST", INFER, {}, v2()[:-1] + b', "id": "req-1"}', True),
    ("with an empty id", "POST", INFER, {}, v2()[:-1] + b', "id": ""}', True),
    ("with an id that is no string", "POST", INFER, {}, v2()[:-1] + b', "id": [1]}', True),
    ("no outputs named", "POST", INFER, {}, v2()[:-1] + b', "outputs": []}', True),
    ("json outputs asked", "POST", INFER, {}, v2()[:-1] + b', "parameters": {"binary_data_output": false}}', False),
    ("an unknown top-level key", "POST", INFER, {}, v2()[:-1] + b', "foo": 1}', True),
    ("version 1", "POST", "/v2/models/mnist/versions/1/infer", {}, v2(), True),
    ("version 01", "POST", "/v2/models/mnist/versions/01/infer", {}, v2(), True),
    ("binary image", "POST", INFER, BINARY_HEADERS, BINARY_BODY, True),
    ("binary image as [1, 28, 28]", "POST", INFER, *binary(shape=[1, 28, 28]), True),
    # the general adapter's, answered 200 all the same
    ("an output named", "POST", INFER, {}, v2()[:-1] + b', "outputs": [{"name": "scores"}]}', False),
    ("binary outputs", "POST", INFER, {}, v2()[:-1] + b', "parameters": {"binary_data_output": true}}', False),
    ("a negative zero", "POST", INFER, {}, with_pixel("-0.0"), False),
    ("numbers with exponents", "POST", INFER, {}, v2([1e-5] * 784), False),
    ("nested data", "POST", INFER, {}, v2([PIXELS]), False),
    ("body in two pieces", "POST", INFER, {}, [v2()[:100], v2()[100:]], False),
    # refusals
    ("a boolean", "POST", INFER, {}, with_pixel("true"), False),
    ("a string", "POST", INFER, {}, with_pixel('"0.5"'), False),
    ("a null", "POST", INFER, {}, with_pixel("null"), False),
    ("an object", "POST", INFER, {}, with_pixel("{}"), False),
    ("a list in flat data", "POST", INFER, {}, with_pixel("[0.5]"), False),
    ("NaN", "POST", INFER, {}, with_pixel("NaN"), False),
    ("above the range", "POST", INFER, {}, with_pixel("1.5"), False),
    ("below the range", "POST", INFER, {}, with_pixel("-0.5"), False),
    ("past float32", "POST", INFER, {}, with_pixel("1e39"), False),
    ("past float64", "POST", INFER, {}, with_pixel("1e400"), False),
    ("a huge whole number", "POST", INFER, {}, with_pixel(str(10**30)), False),
    ("past 64 bits", "POST", INFER, {}, with_pixel(str(2**70)), False),
    ("too few values", "POST", INFER, {}, v2(PIXELS[:783]), False),
    ("too many values", "POST", INFER, {}, v2([*PIXELS, 0.5]), False),
    ("FP64", "POST", INFER, {}, v2(datatype="FP64"), False),
    ("INT32", "POST", INFER, {}, v2(datatype="INT32"), False),
    ("fp32 in lower case", "POST", INFER, {}, v2(datatype="fp32"), False),
    ("BYTES", "POST", INFER, {}, v2(datatype="BYTES"), False),
    ("no datatype", "POST", INFER, {}, v2(datatype=None), False),
    ("shape [1, 785]", "POST", INFER, {}, v2(shape=[1, 785]), False),
    ("shape [0, 784]", "POST", INFER, {}, v2([], shape=[0, 784]), False),
    ("shape [-1, 784]", "POST", INFER, {}, v2(shape=[-1, 784]), False),
    ("a float dimension", "POST", INFER, {}, v2(shape=[1, 784.0]), False),
    ("a boolean dimension", "POST", INFER, {}, v2(shape=[1, True, 28, 28]), False),
    ("a boolean batch", "POST", INFER, {}, v2(shape=[True, 784]), False),
    ("a list dimension", "POST", INFER, {}, v2(shape=[1, [784]]), False),
    ("shape as text", "POST", INFER, {}, v2(shape="1,784"), False),
    ("rank 7", "POST", INFER, {}, v2(shape=[1, 784, 1, 1, 1, 1, 1]), False),
    ("no shape", "POST", INFER, {}, v2(shape=None), False),
    ("another input name", "POST", INFER, {}, v2(name="image"), False),
    ("a numeric input name", "POST", INFER, {}, v2(name=5), False),
    ("tensor parameters not an object", "POST", INFER, {}, v2(parameters="x"), False),
    ("a binary size without binary data", "POST", INFER, {}, v2(parameters={"binary_data_size": 3136}), False),
    ("no data", "POST", INFER, {}, inputs({"name": "images", "datatype": "FP32", "shape": [1, 784]}), False),
    ("the input twice", "POST", INFER, {}, inputs(TENSOR, TENSOR), False),
    ("an extra input", "POST", INFER, {}, inputs(TENSOR, {**TENSOR, "name": "x"}), False),
    ("no inputs", "POST", INFER, {}, b'{"inputs": []}', False),
    ("inputs an object", "POST", INFER, {}, b'{"inputs": {}}', False),
    ("an input not an object", "POST", INFER, {}, b'{"inputs": [5]}', False),
    ("outputs unknown", "POST", INFER, {}, v2()[:-1] + b', "outputs": [{"name": "nope"}]}', False),
    ("outputs as text", "POST", INFER, {}, v2()[:-1] + b', "outputs": "scores"}', False),
    ("parameters not an object", "POST", INFER, {}, v2()[:-1] + b', "parameters": "x"}', False),
    ("parameters null", "POST", INFER, {}, v2()[:-1] + b', "parameters": null}', False),
    ("not JSON", "POST", INFER, {}, b"{not json", False),
    ("invalid UTF-8", "POST", INFER, {}, b'{"inputs": "\xff"}', False),
    ("empty body", "POST", INFER, {}, b"", False),
    ("a JSON list", "POST", INFER, {}, b"[1, 2]", False),
    ("JSON null", "POST", INFER, {}, b"null", False),
    ("deeply nested", "POST", INFER, {}, b'{"inputs": ' + b"[" * 3000 + b"]" * 3000 + b"}", False),
    ("over the size limit", "POST", INFER, {}, v2(PIXELS * 5, shape=[5, 784]), False),
    ("declared over the size limit", "POST", INFER, {"content-length": "90000"}, v2(), False),
    ("binary: header length not digits", "POST", INFER, header_length("abc"), BINARY_BODY, False),
    ("binary: header length in other digits", "POST", INFER, header_length("\u00b2"), BINARY_BODY, False),
    ("binary: header length past the body", "POST", INFER, header_length("99999"), BINARY_BODY, False),
    ("binary: header length 0", "POST", INFER, header_length("0"), BINARY_BODY, False),
    ("binary: header length of 5000 digits", "POST", INFER, header_length("9" * 5000), BINARY_BODY, False),
    ("binary: size too small", "POST", INFER, *binary(size=3000), False),
    ("binary: size negative", "POST", INFER, *binary(size=-4), False),
    ("binary: size a boolean", "POST", INFER, *binary(size=True), False),
    ("binary: bytes left over", "POST", INFER, BINARY_HEADERS, BINARY_BODY + b"\0\0\0\0", False),
    ("binary: too few bytes", "POST", INFER, *binary(IMAGE.tobytes()[:-4]), False),
    ("binary: NaN", "POST", INFER, *binary(NAN_BYTES), False),
    ("binary: out of range", "POST", INFER, *binary((IMAGE - 1).tobytes()), False),
    ("binary: FP64", "POST", INFER, *binary(IMAGE.astype(np.float64).tobytes(), datatype="FP64"), False),
    ("GET infer", "GET", INFER, {}, b"", False),
    ("unknown model", "POST", "/v2/models/nope/infer", {}, v2(), False),
    ("version not loaded", "POST", "/v2/models/mnist/versions/2/infer", {}, v2(), False),
    ("version 0", "POST", "/v2/models/mnist/versions/0/infer", {}, v2(), False),
    ("version not a number", "POST", "/v2/models/mnist/versions/one/infer", {}, v2(), False),
    ("version empty", "POST", "/v2/models/mnist/versions//infer", {}, v2(), False),
    ("version with a slash", "POST", "/v2/models/mnist/versions/1/2/infer", {}, v2(), False),
    ("version of 5000 digits", "POST", f"/v2/models/mnist/versions/{'9' * 5000}/infer", {}, v2(), False),
    ("name with a slash", "POST", "/v2/models/mnist/x/infer", {}, v2(), False),
    ("no name", "POST", "/v2/models//infer", {}, v2(), False),
]


def load(base: Path) -> ModelServer:
    server = ModelServer(ServerConfig("mnist", str(base), rest_port=0, grpc_port=0))
    for repository in server.repositories:
        repository.start()
    assert server.wait_ready(60)
    return server


@dataclass
class Apps:
    general: Any  # the REST app answering every V2 infer request with the general adapter
    general_plane: DataPlane
    fast: V2FastInfer  # the same app on another server, behind the fast path
    taken: set[str]  # the labels of the corpus' requests the fast path answers itself


# a model whose input is a feature vector, not an image: exact shapes only, any finite value
FEATURES_TAKEN = {label for label, *_, taken in CORPUS if taken and "28" not in label} | {
    "above the range",
    "below the range",
    "a negative zero",
    "binary: out of range",
    "a huge whole number",
    "past 64 bits",
}


@pytest.fixture(scope="module", params=["image", "features"])
def apps(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, centroid_model: bytes
) -> Iterator[Apps]:
    base = tmp_path_factory.mktemp("fast") / "mnist"
    publish(base, 1, centroid_model, image_classifier_signature(image=request.param == "image").to_json())
    general_server, fast_server = load(base), load(base)
    try:
        general = build_rest_app(general_server.plane, LIMITS, fast_v2=False)
        fast = build_rest_app(fast_server.plane, LIMITS)  # what `trainflow serve` runs
        assert isinstance(fast, V2FastInfer)
        taken = {label for label, *_, fast_path in CORPUS if fast_path} if request.param == "image" else FEATURES_TAKEN
        yield Apps(general, general_server.plane, fast, taken)
    finally:
        general_server.stop(grace=0.1)
        fast_server.stop(grace=0.1)


def ask(app: Any, method: str, path: str, headers: dict[str, str], body: bytes | list[bytes]) -> tuple:
    """Status, headers and body of one request to an ASGI app, sent as uvicorn would."""
    chunks = body if isinstance(body, list) else [body]
    sizes = {"content-length": str(sum(map(len, chunks)))}
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in {**sizes, **headers}.items()]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": raw,
        "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
    }  # fmt: skip
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, reply = sent
    return start["status"], start["headers"], reply["body"]


def request_counts(app: Any) -> dict[str, float]:
    """/metrics' request and error counts and the latency histogram's counts (not its timings)."""
    _, _, text = ask(app, "GET", "/metrics", {}, b"")
    found = {}
    for line in text.decode().splitlines():
        match = re.match(r"(trainflow_request(?:s_total|_errors_total|_duration_seconds_count)\{[^}]*\}) (\S+)$", line)
        if match:
            found[match[1]] = float(match[2])
    return found


def test_every_request_of_the_corpus_gets_the_general_adapters_answer_and_the_same_metrics(apps: Apps) -> None:
    before = apps.fast.answered
    for label, method, path, headers, body, _ in CORPUS:
        expected = ask(apps.general, method, path, headers, body)
        assert ask(apps.fast, method, path, headers, body) == expected, label
    assert apps.fast.answered - before == len(apps.taken)
    assert request_counts(apps.fast.general) == request_counts(apps.general)


@pytest.mark.parametrize("index", [i for i, request in enumerate(CORPUS) if request[5]], ids=lambda i: CORPUS[i][0])
def test_the_usual_requests_are_answered_by_the_fast_path_itself(apps: Apps, index: int) -> None:
    label, method, path, headers, body, _ = CORPUS[index]
    if label not in apps.taken:
        pytest.skip("an image shape: a feature vector takes its exact shape only")
    before = apps.fast.answered
    status, _, reply = ask(apps.fast, method, path, headers, body)
    assert (status, apps.fast.answered - before) == (200, 1)
    assert json.loads(reply)["model_name"] == "mnist"


def test_a_busy_server_refuses_the_usual_request_as_the_general_adapter_does(apps: Apps) -> None:
    planes = (apps.general_plane, apps.fast.plane)
    _, method, path, headers, body, _ = CORPUS[0]
    counted = request_counts(apps.general), request_counts(apps.fast.general)
    for plane in planes:
        plane.max_concurrency = 0
    try:
        expected = ask(apps.general, method, path, headers, body)
        answered = ask(apps.fast, method, path, headers, body)
    finally:
        for plane in planes:
            plane.max_concurrency = ServerConfig("mnist", "unused").max_concurrency
    assert answered == expected
    assert expected[0] == 503
    busy = 'trainflow_request_errors_total{error="Unavailable",model="-",protocol="v2-rest"}'
    after = request_counts(apps.general), request_counts(apps.fast.general)
    assert [a[busy] - c.get(busy, 0) for a, c in zip(after, counted, strict=True)] == [1, 1]


def test_a_version_number_too_long_for_python_is_not_found_rather_than_an_internal_error(apps: Apps) -> None:
    status, _, body = ask(apps.general, "POST", f"/v2/models/mnist/versions/{'9' * 5000}/infer", {}, v2())
    assert status == 404
    assert json.loads(body)["error"].endswith("versions are positive integers")


def test_a_binary_header_length_too_long_for_python_is_a_bad_request_rather_than_an_internal_error(apps: Apps) -> None:
    status, _, body = ask(apps.general, "POST", INFER, header_length("1" * 5000), BINARY_BODY)
    assert status == 400
    assert "expected the JSON header's size within the" in json.loads(body)["error"]


def test_a_request_too_costly_for_the_event_loop_is_left_to_the_general_adapters_worker_threads(apps: Apps) -> None:
    plane = apps.fast.plane
    inline_seconds, plane.inline_seconds = plane.inline_seconds, 0.0  # every request costs more than nothing
    try:
        app = build_rest_app(plane, LIMITS)
        assert isinstance(app, V2FastInfer)
        for label, method, path, headers, body, _ in CORPUS:
            if label in ("json image", "binary image"):
                assert ask(app, method, path, headers, body) == ask(apps.general, method, path, headers, body)
        assert app.answered == 0
    finally:
        plane.inline_seconds = inline_seconds
