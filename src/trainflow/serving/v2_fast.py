"""The V2 REST infer path for the usual request: one float tensor, JSON or binary, all outputs as JSON.

Most inference requests are one image or feature row for a model's one input, in the datatype and a shape the
model takes, wanting every output back as JSON. The general adapter (`v2_rest.py`) checks such a request in
about 35 Python calls; here each model version's input name, datatype, accepted shapes, value-range check and
reply template are prepared once (`FastModel`), and a request is checked in a few calls per tensor.

Anything else falls back to the general adapter before this path does anything a client or /metrics could
see: a request it declines (a second tensor, another datatype, nested data, a value out of range, a body in
several pieces, batching, binary outputs, ...) is answered by `v2_rest.V2Rest` from the same bytes, so every
refusal keeps its status and message (`tests/serving/test_v2_fast.py` compares the two on a corpus of bad
requests). What it answers is what the general adapter would: the same checks, admission, metrics and reply. It
answers on the event loop only what the general adapter's cost estimate would answer there (`inline_cost`); the
general adapter's scan for encoded images (`numbers_only`) has nothing to find in a request this path takes.
"""

from __future__ import annotations

import math
import struct
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from starlette.types import Message, Receive, Scope, Send

from trainflow.serving import v2_tensors
from trainflow.serving.dataplane import MAX_VERSION_DIGITS, DataPlane, inline_cost
from trainflow.serving.errors import ServingError
from trainflow.serving.http_status import error_response
from trainflow.serving.json_arrays import may_hold_booleans
from trainflow.serving.rest_io import SMALL_BODY_BYTES, BodyLimits
from trainflow.serving.runtime import OnnxModel
from trainflow.serving.tensor_specs import within_bounds
from trainflow.serving.v2_rest import header_size

PROTOCOL = "v2-rest"  # the general adapter's: both count under the same metrics labels
_PREFIX = "/v2/models/"
_SUFFIX = "/infer"
_VERSIONS = "/versions/"
_ARRAY_TYPES = {"float32": "f", "float64": "d"}  # struct packs JSON numbers in C, without numpy's warnings
_MAX_ROUTES = 256  # parsed infer paths kept; a client inventing version numbers cannot grow it past this
_LENGTH = b"content-length"
_ODD_LENGTH = 1 << 62  # a Content-Length the fast path leaves to the general reader
_HEADER_LENGTH = b"inference-header-content-length"
_JSON_HEADERS = b"application/json"
_WHOLE = {int}  # the types of a shape's dimensions

General = Callable[[Scope, Receive, Send], Awaitable[None]]


class FastModel:
    """What answering one model version's usual V2 request needs, looked up once."""

    __slots__ = (
        "alias",
        "bounds",
        "datatype",
        "example_values",
        "feed_shape",
        "image",
        "inline_bytes",
        "item_bytes",
        "onnx_input",
        "onnx_outputs",
        "reply_template",
        "reply_with_id",
        "typecode",
    )

    def __init__(self, model: OnnxModel, alias: str, typecode: str) -> None:
        signature = model.signature_def(v2_tensors.signature_name(model))
        spec = signature.inputs[alias]
        check = model.input_checks(v2_tensors.signature_name(model))[alias]
        self.alias = alias
        self.typecode = typecode
        self.onnx_input = spec.onnx_name
        self.datatype = v2_tensors.SIGNATURE_DATATYPES[spec.dtype]
        self.item_bytes = np.dtype(spec.dtype).itemsize
        self.feed_shape = spec.shape[1:]
        self.inline_bytes = 0  # the largest body answered on the event loop (`V2FastInfer` sets it)
        self.image = check.layout is not None
        self.bounds = check.bounds
        if check.layout is not None:  # the shapes `tensor_specs._image` takes, the batch dimension aside
            c, h, w = check.layout.channels, check.layout.height, check.layout.width
            shapes = {(check.layout.pixels,), (c, h, w)} | ({(h, w)} if c == 1 else set())
        else:
            shapes = {tuple(spec.shape[1:])}
        self.example_values = {shape: math.prod(shape) for shape in shapes}  # values per example, by shape
        self.onnx_outputs = [out.onnx_name for out in signature.outputs.values()]
        # the reply `v2_rest` builds, its outputs' shapes and data left as %s (a literal % doubled)
        outputs = b",".join(
            b'{"name":%s,"datatype":%s,"shape":%%s,"data":%%s}'
            % (_literal(name), _literal(v2_tensors.OUTPUT_DATATYPES.get(np.dtype(out.dtype), "BYTES")))
            for name, out in signature.outputs.items()
        )
        head = b'{"model_name":%s,"model_version":%s,"outputs":[' % (_literal(model.name), _literal(str(model.version)))
        self.reply_template = head + outputs + b"]}"
        self.reply_with_id = head + outputs + b'],"id":%s}'

    @staticmethod
    def of(model: OnnxModel) -> FastModel | None:
        """The prepared path for `model`, or None when its V2 signature is not one this path answers."""
        if model.batcher is not None:  # a request waits for its batch in a worker thread: the general path's
            return None
        signature = model.signature_def(v2_tensors.signature_name(model))
        if len(signature.inputs) != 1 or any(out.dtype == "string" for out in signature.outputs.values()):
            return None
        ((alias, spec),) = signature.inputs.items()
        typecode = _ARRAY_TYPES.get(spec.dtype)
        if typecode is None or not spec.shape or spec.shape[0] != -1 or -1 in spec.shape[1:]:
            return None
        check = model.input_checks(v2_tensors.signature_name(model))[alias]
        if check.layout is not None and check.bounds is None:  # a range the bits cannot check: the exact check
            return None
        return FastModel(model, alias, typecode)

    def feed(self, tensor: object, json_text: bytes, binary: bytes) -> np.ndarray | None:
        """The checked graph input for the request's one tensor, or None for anything unusual."""
        if type(tensor) is not dict or tensor.get("name") != self.alias or tensor.get("datatype") != self.datatype:
            return None
        shape = tensor.get("shape")  # whole numbers only: True and 784.0 would hash like 1 and 784
        if type(shape) is not list or not 2 <= len(shape) <= 4 or {*map(type, shape)} != _WHOLE:
            return None
        rows = shape[0]
        per_example = self.example_values.get(tuple(shape[1:]))
        if rows < 1 or per_example is None:
            return None
        values = rows * per_example
        parameters = tensor.get("parameters", {})
        if type(parameters) is not dict:
            return None
        size = parameters.get("binary_data_size")
        if size is not None:
            if type(size) is not int or size != len(binary) or size != values * self.item_bytes:
                return None
            flat = np.frombuffer(binary, dtype=self.typecode)
        else:
            data = tensor.get("data")
            if binary or type(data) is not list or len(data) != values or may_hold_booleans(json_text):
                return None
            # JSON numbers only: a string, null, list, object or huge integer raises struct.error, a number past
            # float32 OverflowError (booleans: none, by the scan above). struct packs 784 numbers in ~9 us where
            # array.array takes ~20: it converts each with one C call, array.array through PyArg_Parse.
            try:
                flat = np.frombuffer(struct.pack("=%d%s" % (values, self.typecode), *data), dtype=self.typecode)
            except (struct.error, OverflowError):
                return None
        batch = flat.reshape(rows, *self.feed_shape)
        if self.image:
            return batch if within_bounds(batch, self.bounds) else None  # type: ignore[arg-type]
        return batch if np.isfinite(batch).all() else None

    def reply(self, outputs: list[np.ndarray], request_id: object) -> bytes:
        """The V2 reply with every output as JSON data, as `v2_rest` builds it."""
        values = [orjson.dumps(part) for value in outputs for part in (value.shape, value.ravel().tolist())]
        if isinstance(request_id, str) and request_id:
            return self.reply_with_id % (*values, orjson.dumps(request_id))
        return self.reply_template % tuple(values)


class V2FastInfer:
    """An ASGI app: `POST /v2/models/{name}[/versions/{v}]/infer` for the usual request, before `general` (the REST
    app) answers everything else."""

    def __init__(self, plane: DataPlane, limits: BodyLimits, general: General) -> None:
        self.plane = plane
        self.max_bytes = min(limits.max_bytes, SMALL_BODY_BYTES)  # larger bodies count against the memory budget
        self.general = general
        self.answered = 0  # requests this path answered itself
        self._models: weakref.WeakKeyDictionary[OnnxModel, FastModel | None] = weakref.WeakKeyDictionary()
        self._routes: dict[str, tuple[str, int | None] | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith(_SUFFIX):
            await self.general(scope, receive, send)
            return
        message = await receive()
        found = self._request(scope, message)
        if found is None:
            await self.general(scope, _replay(message, receive), send)
            return
        model, fast, feed, request_id = found
        try:
            with self.plane.request(PROTOCOL) as accounted:
                accounted.model = model
                body = fast.reply(model.run_graph(fast.onnx_outputs, {fast.onnx_input: feed}), request_id)
        except Exception as exc:  # noqa: BLE001 - as the general adapter: one status for each error, 5xx else
            await error_response(exc)(scope, receive, send)
            return
        self.answered += 1
        headers = [(b"content-length", b"%d" % len(body)), (b"content-type", _JSON_HEADERS)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _request(self, scope: Scope, message: Message) -> tuple[OnnxModel, FastModel, np.ndarray, object] | None:
        """The model, its prepared path, the checked input and the request's id; None: the general path answers."""
        if message["type"] != "http.request" or message.get("more_body", False):
            return None
        body = message.get("body", b"")
        declared, header_length = _lengths(scope["headers"])
        if not body or len(body) > self.max_bytes or (declared is not None and declared > self.max_bytes):
            return None
        model = self._model(scope["path"])
        fast = None if model is None else self._prepared(model)
        if model is None or fast is None or len(body) > fast.inline_bytes:
            return None
        json_text, binary = body, b""
        if header_length is not None:
            size = header_size(header_length)
            if size is None or size > len(body):
                return None
            json_text, binary = body[:size], body[size:]
        try:
            document = orjson.loads(json_text)
        except (orjson.JSONDecodeError, RecursionError):
            return None
        if type(document) is not dict or not _all_outputs_as_json(document):
            return None
        inputs = document.get("inputs")
        if type(inputs) is not list or len(inputs) != 1:
            return None
        feed = fast.feed(inputs[0], json_text, binary)
        return None if feed is None else (model, fast, feed, document.get("id"))

    def _model(self, path: str) -> OnnxModel | None:
        """The model version an infer path names, if it is loaded; None for any other path."""
        try:
            route = self._routes[path]
        except KeyError:
            route = _route(path, self.plane.repositories)
            if len(self._routes) >= _MAX_ROUTES:
                self._routes.clear()
            self._routes[path] = route
        if route is None:
            return None
        name, version = route
        try:
            return self.plane.repositories[name].get(version)
        except ServingError:  # not loaded (yet): the general path says so
            return None

    def _prepared(self, model: OnnxModel) -> FastModel | None:
        try:
            return self._models[model]
        except KeyError:
            fast = self._models[model] = FastModel.of(model)
            if fast is not None:
                fast.inline_bytes = _inline_bytes(model, self.plane.inline_seconds, self.max_bytes)
            return fast


def _inline_bytes(model: OnnxModel, seconds: float, most: int) -> int:
    """The largest body size up to `most` whose `inline_cost` is within `seconds` (0: none; the cost grows with
    the size, so a binary search finds it once per model version)."""
    low, high = 0, most
    while low < high:
        middle = (low + high + 1) // 2
        if inline_cost(model, middle) <= seconds:
            low = middle
        else:
            high = middle - 1
    return low


def _route(path: str, served: dict[str, Any]) -> tuple[str, int | None] | None:
    """(model name, version or None for the latest) of a well-formed infer path of a served model."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    name, versioned, version = path[len(_PREFIX) : -len(_SUFFIX)].partition(_VERSIONS)
    if name not in served or "/" in name:
        return None
    if not versioned:
        return name, None
    if not (version.isascii() and version.isdigit() and len(version) <= MAX_VERSION_DIGITS) or int(version) < 1:
        return None
    return name, int(version)


def _lengths(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, str | None]:
    """The declared Content-Length (None if absent; one that is not plain digits counts as too large) and the
    Inference-Header-Content-Length, the first of each."""
    declared: int | None = None
    header_length: str | None = None
    seen_length = seen_header = False
    for key, value in headers:
        if key == _LENGTH and not seen_length:
            seen_length = True
            text = value.decode("latin-1")
            declared = int(text) if text.isascii() and text.isdigit() and len(text) < 19 else _ODD_LENGTH
        elif key == _HEADER_LENGTH and not seen_header:
            seen_header = True
            header_length = value.decode("latin-1")
    return declared, header_length


def _all_outputs_as_json(document: dict[str, Any]) -> bool:
    """No outputs named (all of them) and binary outputs not asked for: the reply `FastModel.reply` builds."""
    outputs = document.get("outputs")
    if outputs is not None and outputs != []:
        return False
    if "parameters" not in document:
        return True
    parameters = document["parameters"]
    return type(parameters) is dict and not parameters.get("binary_data_output")


def _literal(value: str) -> bytes:
    """`value` as a JSON string inside a %-template."""
    return orjson.dumps(value).replace(b"%", b"%%")


def _replay(first: Message, receive: Receive) -> Receive:
    """`receive`, giving `first` (already read) once more before anything else."""
    pending = [first]

    async def again() -> Message:
        return pending.pop() if pending else await receive()

    return again
