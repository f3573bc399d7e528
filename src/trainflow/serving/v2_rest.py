"""KServe V2 / Open Inference Protocol REST adapter (`/v2/...`), with Triton's binary tensor extension."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from trainflow.serving import v2_tensors
from trainflow.serving.dataplane import DataPlane, Tensors, numbers_only
from trainflow.serving.errors import InvalidInput, NotFound, Unavailable, shown
from trainflow.serving.http_status import Reply, error_response, json_response
from trainflow.serving.json_arrays import may_hold_booleans
from trainflow.serving.rest_io import BodyReader, parse_json_object
from trainflow.serving.rest_request import RestRequest
from trainflow.serving.runtime import OnnxModel

PROTOCOL = "v2-rest"
HEADER_LENGTH = "inference-header-content-length"
_HEADER_LENGTH_KEY = HEADER_LENGTH.encode()
_MAX_SIZE_DIGITS = 18  # more is no body's size
_PATH = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?:/(?P<action>ready|infer))?\Z")


class V2Rest:
    """Answers `/v2/models/{name}[/versions/{v}][/ready|/infer]` and `GET /v2`."""

    def __init__(self, plane: DataPlane, bodies: BodyReader) -> None:
        self.plane = plane
        self.bodies = bodies

    async def server(self, request: object) -> Reply:
        return json_response(v2_tensors.server_metadata())

    async def __call__(self, request: RestRequest) -> Reply:
        try:
            return await self._route(request)
        except Exception as exc:  # noqa: BLE001 - error_response maps every error to one status (5xx for the unexpected)
            return error_response(exc)

    async def _route(self, request: RestRequest) -> Reply:
        path = request.path
        match = _PATH.match(path)
        if match is None:
            raise NotFound(f"no such V2 route: {shown(path)}")
        name, version, action = match["name"], match["version"], match["action"]
        if action == "infer":
            if request.method != "POST":
                raise NotFound(f"{request.method} {shown(path)}: infer is a POST route")
            return await self._infer(request, name, version)
        if request.method != "GET":
            raise NotFound(f"{request.method} {shown(path)}: model metadata and readiness are GET routes")
        if action == "ready":
            try:
                self.plane.model(name, version)
            except Unavailable:  # the model exists but no version is loaded yet
                return json_response({"name": name, "ready": False}, 503)
            return json_response({"name": name, "ready": True})
        model = self.plane.model(name, version)
        return json_response(v2_tensors.model_metadata(model, [m.version for m in self.plane.versions(name)]))

    async def _infer(self, request: RestRequest, name: str, version: str | None) -> Reply:
        body = await self.bodies.read(request)
        try:
            with self.plane.request(PROTOCOL) as scope:
                scope.model = model = self.plane.model(name, version)
                header_length = request.header(_HEADER_LENGTH_KEY)
                numbers = functools.partial(numbers_only, json_part(body, header_length))
                if self.plane.runs_inline(model, len(body), numbers):  # as offload does, without its coroutine
                    return self._answer(model, body, header_length)
                return await self.plane.in_worker(self._answer, model, body, header_length)
        finally:
            self.bodies.release(body)

    def _answer(self, model: OnnxModel, body: bytes, header_length: str | None) -> Reply:
        """Decode, run and encode one infer request (in a worker thread)."""
        header, binary = _split_body(body, header_length)
        inputs = _inputs(header, binary, model, functools.partial(may_hold_booleans, json_part(body, header_length)))
        requested = _requested_outputs(header)
        outputs = self.plane.run(model, v2_tensors.signature_name(model), inputs)
        return _response(model, header.get("id"), outputs, requested)


def json_part(body: bytes, header_length: str | None) -> bytes:
    """The JSON of a request: all of it, or the header before binary tensors (their raw bytes are not JSON).

    Raw FP32 bytes almost always hold a backslash, which would send every binary request to a worker thread;
    a BYTES tensor still says so in the header. A bad length leaves the whole body (`_split_body` refuses it).
    """
    size = header_size(header_length)
    return body if size is None else body[:size]


def header_size(header_length: str | None) -> int | None:
    """The JSON header's size in bytes an Inference-Header-Content-Length gives; None when absent or not a plain
    number (int() would refuse thousands of digits with a ValueError: an internal error, not a bad request)."""
    if header_length is None or not (header_length.isascii() and header_length.isdigit()):
        return None
    return int(header_length) if len(header_length) <= _MAX_SIZE_DIGITS else None


def _split_body(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    if header_length is None:
        return parse_json_object(body), b""
    size = header_size(header_length)
    if size is None or size > len(body):
        raise InvalidInput(
            f"{HEADER_LENGTH} is {shown(header_length)}: expected the JSON header's size within the "
            f"{len(body)}-byte body"
        )
    return parse_json_object(body[:size]), body[size:]


def _inputs(
    header: dict[str, Any], binary: bytes, model: OnnxModel, booleans: Callable[[], bool] = lambda: True
) -> Tensors:
    """The request's tensors; `booleans()` False: its JSON holds no true/false (a cheaper check of JSON data),
    asked once if a tensor has JSON data."""
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("request needs 'inputs': a non-empty list of tensors")
    tensors: Tensors = {}
    offset = 0
    may_hold: bool | None = None
    for tensor in inputs:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise InvalidInput("each input needs a 'name', 'datatype', 'shape' and 'data'")
        name = tensor["name"]
        if name in tensors:
            raise InvalidInput(f"input {shown(name)} is given twice: send each input once")
        dtype = v2_tensors.input_dtype(name, tensor.get("datatype"), model)
        shape = v2_tensors.check_shape(name, tensor.get("shape"))
        size = _parameters(tensor, "input", name).get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise InvalidInput(
                    f"input {shown(name)}: binary_data_size {shown(size)} is beyond the "
                    f"{len(binary) - offset} bytes of binary data left"
                )
            tensors[name] = v2_tensors.from_buffer(name, binary[offset : offset + size], dtype, shape)
            offset += size
        elif "data" in tensor:
            if may_hold is None:
                may_hold = booleans()
            tensors[name] = v2_tensors.from_values(name, tensor["data"], dtype, shape, may_hold)
        else:
            raise InvalidInput(f"input {shown(name)} has neither 'data' nor a binary_data_size parameter")
    if offset != len(binary):
        raise InvalidInput(
            f"{len(binary) - offset} bytes of binary data after the last tensor: the "
            f"binary_data_size parameters must add up to the {len(binary)} bytes after the JSON header"
        )
    return tensors


def _parameters(entry: dict[str, Any], kind: str, name: object = None) -> dict[str, Any]:
    """An entry's `parameters` object ({} when absent); InvalidInput naming the `kind` of entry and its name."""
    parameters = entry.get("parameters", {})
    if not isinstance(parameters, dict):
        what = kind if name is None else f"{kind} {shown(name)}"
        raise InvalidInput(f"{what}: 'parameters' must be a JSON object")
    return parameters


def _requested_outputs(header: dict[str, Any]) -> dict[str, tuple[bool, int]] | None:
    """Output name -> (binary?, top-k classification or 0), or None for all outputs (binary when
    `binary_data_output` is set)."""
    parameters = _parameters(header, "the request")
    outputs = header.get("outputs")
    if outputs is None or outputs == []:  # as over gRPC: no outputs named means all of them
        return None if not parameters.get("binary_data_output") else {"*": (True, 0)}
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InvalidInput("'outputs' must be a list of {\"name\": ...} objects")
    default = bool(parameters.get("binary_data_output", False))
    requested = {}
    for output in outputs:
        settings = _parameters(output, "output", output["name"])
        count = v2_tensors.classification_count(output["name"], settings.get("classification"))
        requested[output["name"]] = (bool(settings.get("binary_data", default)), count)
    return requested


def _response(
    model: OnnxModel, request_id: object, outputs: Tensors, requested: dict[str, tuple[bool, int]] | None
) -> Reply:
    if requested is None:  # the usual request: every output as JSON
        return _all_as_json(model, request_id, outputs)
    if "*" in requested:
        requested = {name: (True, 0) for name in outputs}
    unknown = sorted(set(requested) - set(outputs))
    if unknown:
        raise InvalidInput(f"unknown output {shown(', '.join(unknown))}: outputs are {', '.join(outputs)}")
    described, blobs = [], []
    for name, (binary, count) in requested.items():
        value = outputs[name]
        if count:
            value = v2_tensors.classify_output(model, name, value, count)
        entry: dict[str, Any] = {
            "name": name,
            "datatype": v2_tensors.output_datatype(value),
            "shape": list(value.shape),
        }
        if binary:
            blob = v2_tensors.bytes_tensor(value) if value.dtype == object else np.ascontiguousarray(value).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = value.ravel().tolist()
        described.append(entry)
    body = _reply_body(model, request_id, described)
    if not blobs:
        return json_response(body)
    header = orjson.dumps(body)
    return Reply(
        b"".join([header, *blobs]),
        200,
        b"application/octet-stream",
        {"Inference-Header-Content-Length": str(len(header))},
    )


def _all_as_json(model: OnnxModel, request_id: object, outputs: Tensors) -> Reply:
    """The reply with every output as JSON data, built in one expression (most requests want this)."""
    described = [
        {
            "name": name,
            "datatype": v2_tensors.output_datatype(value),
            "shape": list(value.shape),
            "data": value.ravel().tolist(),
        }
        for name, value in outputs.items()
    ]
    return json_response(_reply_body(model, request_id, described))


def _reply_body(model: OnnxModel, request_id: object, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"model_name": model.name, "model_version": str(model.version), "outputs": outputs}
    if isinstance(request_id, str) and request_id:
        body["id"] = request_id
    return body
