"""TF Serving REST API adapter (`/v1/models/...`): predict (row and columnar), classify, status, metadata."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from google.protobuf import json_format
from starlette.requests import Request
from starlette.responses import Response

from trainflow.export.signature import CLASSIFY_METHOD, CLASSIFY_SIGNATURE
from trainflow.serving import tfs_metadata
from trainflow.serving.dataplane import DataPlane, Tensors
from trainflow.serving.errors import InvalidInput, NotFound, shown
from trainflow.serving.http_status import error_response, json_response
from trainflow.serving.images import ImageBatch
from trainflow.serving.json_arrays import numbers_array
from trainflow.serving.rest_io import BodyReader, parse_json_object
from trainflow.serving.runtime import OnnxModel

PROTOCOL = "tfs-rest"
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                   r"(?::(?P<verb>[A-Za-z]+)|/(?P<metadata>metadata))?$")


class TfsRest:
    """Answers `/v1/models/{name}[/versions/{v}|/labels/{l}][:predict|:classify|:regress|/metadata]`."""

    def __init__(self, plane: DataPlane, bodies: BodyReader) -> None:
        self.plane = plane
        self.bodies = bodies

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except Exception as exc:
            return error_response(exc)

    async def _route(self, request: Request) -> Response:
        match = _PATH.match(request.url.path)
        if match is None:
            raise NotFound(f"no such TF Serving route: {shown(request.url.path)}")
        name, version, label, verb = match["name"], match["version"], match["label"], match["verb"]
        if label is not None:
            raise NotFound(f"model {shown(name)} has no version label {shown(label)}: no labels are configured, "
                           "address versions by number")
        if verb is None:
            if request.method != "GET":
                raise NotFound(f"{request.method} {shown(request.url.path)}: status and metadata are GET routes")
            return self._metadata(name, version) if match["metadata"] else self._status(name, version)
        if request.method != "POST" or match["metadata"]:
            raise NotFound(f"{request.method} {shown(request.url.path)}: :{verb} is a POST route")
        if verb not in ("predict", "classify", "regress"):
            raise NotFound(f"unknown verb {shown(':' + verb)}: use :predict, :classify or :regress")
        async with self.bodies.read(request) as body:
            with self.plane.request(PROTOCOL) as scope:
                scope.model = model = self.plane.model(name, version)
                return await self.plane.offload(self._answer, model, body, verb)

    def _answer(self, model: OnnxModel, body: bytes, verb: str) -> Response:
        """Decode, run and encode one :predict, :classify or :regress request (in a worker thread)."""
        request = parse_json_object(body)
        if verb == "predict":
            return json_response(self._predict(model, request))
        return json_response(self._classify(model, request, verb))

    def _status(self, name: str, version: str | None) -> Response:
        models = [self.plane.model(name, version)] if version else list(self._all(name))
        response = tfs_metadata.model_status(models)
        return json_response(json_format.MessageToDict(response, preserving_proto_field_name=True,
                                                       always_print_fields_with_no_presence=True))

    def _all(self, name: str) -> list[OnnxModel]:
        self.plane.model(name)  # NotFound / Unavailable for the whole model
        return list(self.plane.repository.versions.values())

    def _metadata(self, name: str, version: str | None) -> Response:
        model = self.plane.model(name, version)
        signatures = json_format.MessageToDict(tfs_metadata.signature_def_map(model), preserving_proto_field_name=True)
        spec = json_format.MessageToDict(tfs_metadata.model_spec(model), preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
        return json_response({"model_spec": spec, "metadata": {tfs_metadata.SIGNATURE_DEF_FIELD: signatures}})

    def _predict(self, model: OnnxModel, body: dict[str, Any]) -> dict[str, Any]:
        signature_name = _signature_name(body)
        (alias,) = model.signature_def(signature_name).inputs
        if ("instances" in body) == ("inputs" in body):
            raise InvalidInput("request must have exactly one of 'instances' (row format) or 'inputs' (columnar format)")
        images = self.plane.images.batch(alias, model.pixels)
        if "instances" in body:
            outputs = self.plane.run(model, signature_name, _rows(body["instances"], images))
            return {"predictions": _row_outputs(outputs)}
        outputs = self.plane.run(model, signature_name, _columns(body["inputs"], images))
        values = {k: v.tolist() for k, v in outputs.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}

    def _classify(self, model: OnnxModel, body: dict[str, Any], verb: str) -> dict[str, Any]:
        signature_name = _signature_name(body)
        signature = model.signature_def(signature_name)
        if verb != "classify" or signature.method != CLASSIFY_METHOD:
            raise InvalidInput(f"signature '{signature_name}' has method {signature.method}: :{verb} needs a "
                               f"{verb} signature" + (f" such as '{CLASSIFY_SIGNATURE}'" if verb == "classify" else ""))
        (alias,) = signature.inputs
        examples = body.get("examples")
        if not isinstance(examples, list) or not examples:
            raise InvalidInput(f"classify request needs 'examples': a non-empty list of {{\"{alias}\": [...]}} objects")
        context = body.get("context", {})
        if not isinstance(context, dict):
            raise InvalidInput("'context' must be a JSON object of features shared by every example")
        rows = [_example_feature({**context, **e} if isinstance(e, dict) else e, alias) for e in examples]
        outputs = self.plane.run(model, signature_name, _rows(rows, self.plane.images.batch(alias, model.pixels)))
        labels, scores = outputs["classes"].tolist(), outputs["scores"].tolist()
        return {"result": [[[label, score] for label, score in zip(row_labels, row_scores)]
                           for row_labels, row_scores in zip(labels, scores)]}


def _signature_name(body: dict[str, Any]) -> str:
    name = body.get("signature_name", CLASSIFY_SIGNATURE)  # TF Serving's default signature key
    if not isinstance(name, str):
        raise InvalidInput("'signature_name' must be a string")
    return name or CLASSIFY_SIGNATURE


def _example_feature(example: object, alias: str) -> object:
    if not isinstance(example, dict) or alias not in example:
        raise InvalidInput(f"each example must be a JSON object with feature '{alias}' (the image)")
    if set(example) - {alias}:
        raise InvalidInput(f"unknown example feature {shown(sorted(set(example) - {alias}))}: the only feature is "
                           f"'{alias}'")
    return example[alias]


def _rows(instances: object, images: ImageBatch) -> Tensors:
    """Row format: a list of images, each a value or `{alias: value}`; values may be `{"b64": ...}`."""
    alias = images.name
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(f"'instances' must be a non-empty list of images for input '{alias}'")
    if isinstance(instances[0], dict):
        instances = [_named(i, alias) for i in instances]
    if any(isinstance(i, dict) for i in instances):
        decoded = [images.decode(i) if isinstance(i, dict) else _array(i, alias) for i in instances]
        if len({i.shape for i in decoded}) != 1:
            raise InvalidInput(f"input '{alias}': images of different shapes in one request")
        return {alias: np.stack(decoded)}
    return {alias: _array(instances, alias)}


def _named(instance: object, alias: str) -> object:
    if isinstance(instance, dict) and set(instance) == {"b64"}:
        return instance
    if not isinstance(instance, dict) or alias not in instance or len(instance) != 1:
        keys = sorted(instance) if isinstance(instance, dict) else type(instance).__name__
        raise InvalidInput(f"each instance must be an image or {{\"{alias}\": image}}; got keys {shown(keys)}")
    return instance[alias]


def _columns(inputs: object, images: ImageBatch) -> Tensors:
    """Columnar format: the value itself, or `{alias: value}`."""
    alias = images.name
    if isinstance(inputs, dict) and set(inputs) != {"b64"}:
        if set(inputs) != {alias}:
            raise InvalidInput(f"'inputs' names {shown(sorted(inputs))}: the only input is '{alias}'")
        inputs = inputs[alias]
    if isinstance(inputs, dict):
        return {alias: images.decode(inputs)[None]}
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict):
        return _rows(inputs, images)
    return {alias: _array(inputs, alias)}


def _array(value: object, alias: str) -> np.ndarray:
    return numbers_array(value, alias, np.float32)


def _row_outputs(outputs: Tensors) -> list[Any]:
    if len(outputs) == 1:
        return next(iter(outputs.values())).tolist()
    columns = {k: v.tolist() for k, v in outputs.items()}
    rows = len(next(iter(columns.values())))
    return [{k: v[i] for k, v in columns.items()} for i in range(rows)]
