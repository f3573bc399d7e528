"""TF Serving REST API adapter (`/v1/models/...`): predict (row and columnar), classify, status, metadata."""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np
from google.protobuf import json_format

from trainflow.export.signature import CLASSIFY_SIGNATURE, SignatureDef, TensorSpec
from trainflow.serving import tfs_classify, tfs_metadata
from trainflow.serving.dataplane import DataPlane, Tensors, numbers_only
from trainflow.serving.errors import InvalidInput, NotFound, shown
from trainflow.serving.http_status import Reply, error_response, json_response
from trainflow.serving.images import ImageBatch
from trainflow.serving.json_arrays import numbers_array
from trainflow.serving.rest_io import BodyReader, parse_json_object
from trainflow.serving.rest_request import RestRequest
from trainflow.serving.runtime import OnnxModel
from trainflow.serving.tensor_specs import image_layout

PROTOCOL = "tfs-rest"
_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?::(?P<verb>[A-Za-z]+)|/(?P<metadata>metadata))?\Z"
)


class TfsRest:
    """Answers `/v1/models/{name}[/versions/{v}|/labels/{l}][:predict|:classify|:regress|/metadata]`."""

    def __init__(self, plane: DataPlane, bodies: BodyReader) -> None:
        self.plane = plane
        self.bodies = bodies

    async def __call__(self, request: RestRequest) -> Reply:
        try:
            return await self._route(request)
        except Exception as exc:  # noqa: BLE001 - error_response maps every error to one status (5xx for the unexpected)
            return error_response(exc)

    async def _route(self, request: RestRequest) -> Reply:
        path = request.path
        match = _PATH.match(path)
        if match is None:
            raise NotFound(f"no such TF Serving route: {shown(path)}")
        name, version, label, verb = match["name"], match["version"], match["label"], match["verb"]
        if label is not None:
            raise NotFound(
                f"model {shown(name)} has no version label {shown(label)}: no labels are configured, "
                "address versions by number"
            )
        if verb is None:
            if request.method != "GET":
                raise NotFound(f"{request.method} {shown(path)}: status and metadata are GET routes")
            return self._metadata(name, version) if match["metadata"] else self._status(name, version)
        if request.method != "POST" or match["metadata"]:
            raise NotFound(f"{request.method} {shown(path)}: :{verb} is a POST route")
        if verb not in ("predict", "classify", "regress"):
            raise NotFound(f"unknown verb {shown(':' + verb)}: use :predict, :classify or :regress")
        body = await self.bodies.read(request)
        try:
            with self.plane.request(PROTOCOL) as scope:
                scope.model = model = self.plane.model(name, version)
                numbers = functools.partial(numbers_only, body)
                return await self.plane.offload(model, len(body), numbers, self._answer, model, body, verb)
        finally:
            self.bodies.release(body)

    def _answer(self, model: OnnxModel, body: bytes, verb: str) -> Reply:
        """Decode, run and encode one :predict, :classify or :regress request (in a worker thread)."""
        request = parse_json_object(body)
        if verb == "predict":
            return json_response(self._predict(model, request))
        return json_response(self._classify(model, request, verb))

    def _status(self, name: str, version: str | None) -> Reply:
        models = [self.plane.model(name, version)] if version else list(self._all(name))
        response = tfs_metadata.model_status(models)
        return json_response(
            json_format.MessageToDict(
                response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
        )

    def _all(self, name: str) -> list[OnnxModel]:
        return self.plane.versions(name)

    def _metadata(self, name: str, version: str | None) -> Reply:
        model = self.plane.model(name, version)
        signatures = json_format.MessageToDict(tfs_metadata.signature_def_map(model), preserving_proto_field_name=True)
        spec = json_format.MessageToDict(
            tfs_metadata.model_spec(model), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        return json_response({"model_spec": spec, "metadata": {tfs_metadata.SIGNATURE_DEF_FIELD: signatures}})

    def _predict(self, model: OnnxModel, body: dict[str, Any]) -> dict[str, Any]:
        signature_name = _signature_name(body)
        decoders = self._decoders(model.signature_def(signature_name))
        if ("instances" in body) == ("inputs" in body):
            raise InvalidInput(
                "request must have exactly one of 'instances' (row format) or 'inputs' (columnar format)"
            )
        if "instances" in body:
            outputs = self.plane.run(model, signature_name, _rows(body["instances"], decoders))
            return {"predictions": _row_outputs(outputs)}
        outputs = self.plane.run(model, signature_name, _columns(body["inputs"], decoders))
        values = {k: v.tolist() for k, v in outputs.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}

    def _decoders(self, signature: SignatureDef) -> dict[str, Column]:
        return {
            alias: Column(alias, spec, self.plane.images.batch(alias, image_layout(spec)))
            for alias, spec in signature.inputs.items()
        }

    def _classify(self, model: OnnxModel, body: dict[str, Any], verb: str) -> dict[str, Any]:
        signature_name = _signature_name(body)
        signature = model.signature_def(signature_name)
        names, scores = tfs_classify.check_classify_signature(signature_name, signature, verb)
        decoders = self._decoders(signature)
        features = ", ".join(f"'{alias}'" for alias in decoders)
        examples = body.get("examples")
        if not isinstance(examples, list) or not examples:
            raise InvalidInput(
                f"classify request needs 'examples': a non-empty list of objects with feature(s) {features}"
            )
        context = body.get("context", {})
        if not isinstance(context, dict):
            raise InvalidInput("'context' must be a JSON object of features shared by every example")
        rows = [_example({**context, **e} if isinstance(e, dict) else e, decoders) for e in examples]
        outputs = self.plane.run(model, signature_name, _rows(rows, decoders))
        pairs = tfs_classify.classifications(outputs, names, scores)
        return {"result": [[list(pair) for pair in row] for row in pairs]}


class Column:
    """One signature input as JSON arrives for it: numbers of its dtype, or b64 images for image inputs."""

    def __init__(self, alias: str, spec: TensorSpec, images: ImageBatch) -> None:
        self.alias = alias
        self.dtype = np.dtype(spec.dtype) if image_layout(spec) is None else np.dtype(np.float32)
        self.images = images

    def array(self, value: object) -> np.ndarray:
        """A whole batch: nested lists of numbers, one b64 image, or a list of images."""
        if isinstance(value, dict):
            return self.images.decode(value)[None]
        if isinstance(value, list) and value and any(isinstance(v, dict) for v in value):
            return self.rows(value)
        return numbers_array(value, self.alias, self.dtype)

    def rows(self, values: list) -> np.ndarray:
        """One value per example (numbers or a b64 image each)."""
        if not any(isinstance(v, dict) for v in values):
            return numbers_array(values, self.alias, self.dtype)
        decoded = [
            self.images.decode(v) if isinstance(v, dict) else numbers_array(v, self.alias, self.dtype) for v in values
        ]
        if len({d.shape for d in decoded}) != 1:
            raise InvalidInput(f"input '{self.alias}': images of different shapes in one request")
        return np.stack(decoded)


def _signature_name(body: dict[str, Any]) -> str:
    name = body.get("signature_name", CLASSIFY_SIGNATURE)  # TF Serving's default signature key
    if not isinstance(name, str):
        raise InvalidInput("'signature_name' must be a string")
    return name or CLASSIFY_SIGNATURE


def _example(example: object, decoders: dict[str, Column]) -> object:
    aliases = list(decoders)
    if not isinstance(example, dict) or not set(aliases) <= set(example):
        missing = sorted(set(aliases) - set(example)) if isinstance(example, dict) else aliases
        raise InvalidInput(
            f"each example must be a JSON object with feature(s) {shown(aliases)}; missing {shown(missing)}"
        )
    if set(example) - set(aliases):
        raise InvalidInput(
            f"unknown example feature {shown(sorted(set(example) - set(aliases)))}: the features are {shown(aliases)}"
        )
    return example[aliases[0]] if len(aliases) == 1 else example


def _rows(instances: object, decoders: dict[str, Column]) -> Tensors:
    """Row format: a list of examples, each a value or `{alias: value, ...}`; values may be `{"b64": ...}`."""
    aliases = list(decoders)
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(f"'instances' must be a non-empty list of examples for input(s) {shown(aliases)}")
    if len(aliases) == 1:
        (alias,) = aliases
        if isinstance(instances[0], dict):
            instances = [_named(i, alias) for i in instances]
        return {alias: decoders[alias].rows(instances)}
    for instance in instances:
        if not isinstance(instance, dict) or set(instance) != set(aliases):
            keys = sorted(instance) if isinstance(instance, dict) else type(instance).__name__
            raise InvalidInput(f"each instance must be an object with inputs {shown(aliases)}; got {shown(keys)}")
    return {alias: column.rows([i[alias] for i in instances]) for alias, column in decoders.items()}


def _named(instance: object, alias: str) -> object:
    if isinstance(instance, dict) and set(instance) == {"b64"}:
        return instance
    if not isinstance(instance, dict) or alias not in instance or len(instance) != 1:
        keys = sorted(instance) if isinstance(instance, dict) else type(instance).__name__
        raise InvalidInput(f'each instance must be a value or {{"{alias}": value}}; got keys {shown(keys)}')
    return instance[alias]


def _columns(inputs: object, decoders: dict[str, Column]) -> Tensors:
    """Columnar format: the value itself (one input), or `{alias: value, ...}`."""
    aliases = list(decoders)
    if len(aliases) == 1 and not (isinstance(inputs, dict) and set(inputs) != {"b64"}):
        return {aliases[0]: decoders[aliases[0]].array(inputs)}
    if not isinstance(inputs, dict) or set(inputs) != set(aliases):
        names = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise InvalidInput(f"'inputs' names {shown(names)}: the inputs are {shown(aliases)}")
    return {alias: column.array(inputs[alias]) for alias, column in decoders.items()}


def _row_outputs(outputs: Tensors) -> list[Any]:
    if len(outputs) == 1:
        return next(iter(outputs.values())).tolist()
    columns = {k: v.tolist() for k, v in outputs.items()}
    rows = len(next(iter(columns.values())))
    return [{k: v[i] for k, v in columns.items()} for i in range(rows)]
