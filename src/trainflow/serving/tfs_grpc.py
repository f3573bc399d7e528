"""TF Serving gRPC adapter: `PredictionService` (Classify, Predict, GetModelMetadata) and `ModelService`.

The methods run on grpc.aio's event loop; Predict's and Classify's decoding and inference go to the data
plane's workers unless the request is cheap enough to answer on the loop (`DataPlane.offload`).
"""

from __future__ import annotations

import functools
import math

import grpc
import numpy as np

from trainflow.export.signature import CLASSIFY_SIGNATURE
from trainflow.serving import tfs_classify, tfs_metadata
from trainflow.serving.dataplane import DataPlane, Tensors
from trainflow.serving.errors import InvalidInput, NotFound, shown
from trainflow.serving.grpc_status import grpc_errors
from trainflow.serving.json_arrays import MAX_RANK
from trainflow.serving.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from trainflow.serving.protos.tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from trainflow.serving.runtime import OnnxModel
from trainflow.serving.tensor_specs import image_layout

PROTOCOL = "tfs-grpc"
_INPUT_DTYPES = {
    types_pb2.DT_FLOAT: (np.float32, "float_val"),
    types_pb2.DT_DOUBLE: (np.float64, "double_val"),
    types_pb2.DT_INT64: (np.int64, "int64_val"),
    types_pb2.DT_INT32: (np.int32, "int_val"),
    types_pb2.DT_INT16: (np.int16, "int_val"),
    types_pb2.DT_INT8: (np.int8, "int_val"),
    types_pb2.DT_UINT8: (np.uint8, "int_val"),
}


def to_ndarray(name: str, tensor: tensor_pb2.TensorProto) -> np.ndarray:
    """A numeric TensorProto (tensor_content or its *_val field) as an array of its declared shape."""
    if tensor.dtype not in _INPUT_DTYPES:
        accepted = ", ".join(_dtype_name(code) for code in _INPUT_DTYPES)
        raise InvalidInput(
            f"input {shown(name)} has dtype {_dtype_name(tensor.dtype)}: expected one of {accepted} "
            "(see the model's metadata for each input's dtype)"
        )
    dtype, field = _INPUT_DTYPES[tensor.dtype]
    shape = tuple(d.size for d in tensor.tensor_shape.dim)
    if len(shape) > MAX_RANK:
        raise InvalidInput(f"input {shown(name)} has {len(shape)} dimensions: inputs have at most {MAX_RANK}")
    if any(d < 0 for d in shape):
        raise InvalidInput(f"input {shown(name)} has shape {list(shape)}: sizes must be known and non-negative")
    filled = sorted(f.name for f, _ in tensor.ListFields() if f.name.endswith("_val") or f.name == "tensor_content")
    if len(filled) > 1 or (filled and filled[0] not in (field, "tensor_content")):
        raise InvalidInput(
            f"input {shown(name)} of dtype {_dtype_name(tensor.dtype)} sends {' and '.join(filled)}: "
            f"put its values in tensor_content or {field}, one of them"
        )
    content = tensor.tensor_content
    if content and len(content) % np.dtype(dtype).itemsize:
        raise InvalidInput(
            f"input {shown(name)}: tensor_content of {len(content)} bytes is not a whole number of values"
        )
    try:
        values = np.frombuffer(content, dtype=dtype) if content else np.array(getattr(tensor, field), dtype=dtype)
    except OverflowError:
        raise InvalidInput(f"input {shown(name)} holds a number too large for {np.dtype(dtype).name}") from None
    if values.size != math.prod(shape):
        raise InvalidInput(
            f"input {shown(name)} has {values.size} values: shape {list(shape)} needs {math.prod(shape)}"
        )
    return values.reshape(shape)


def _dtype_name(code: int) -> str:
    try:
        return types_pb2.DataType.Name(code)
    except ValueError:
        return str(code)


_OUTPUT_FIELDS = {
    np.dtype(np.float32): (types_pb2.DT_FLOAT, "float_val"),
    np.dtype(np.float64): (types_pb2.DT_DOUBLE, "double_val"),
    np.dtype(np.int64): (types_pb2.DT_INT64, "int64_val"),
    np.dtype(np.int32): (types_pb2.DT_INT32, "int_val"),
    np.dtype(np.int16): (types_pb2.DT_INT16, "int_val"),
    np.dtype(np.int8): (types_pb2.DT_INT8, "int_val"),
    np.dtype(np.uint8): (types_pb2.DT_UINT8, "int_val"),
}


def to_tensor_proto(value: np.ndarray) -> tensor_pb2.TensorProto:
    """Numbers in their dtype's *_val field (float16 in tensor_content), strings in string_val, as TF Serving does."""
    tensor = tensor_pb2.TensorProto()
    tensor.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in value.shape)
    if value.dtype in _OUTPUT_FIELDS:
        tensor.dtype, field = _OUTPUT_FIELDS[value.dtype]
        getattr(tensor, field).extend(value.ravel().tolist())
    elif value.dtype == np.float16:
        tensor.dtype = types_pb2.DT_HALF
        tensor.tensor_content = np.ascontiguousarray(value).tobytes()
    else:
        tensor.dtype = types_pb2.DT_STRING
        tensor.string_val.extend(str(v).encode() for v in value.ravel())
    return tensor


def _numbers_only(request: predict_pb2.PredictRequest) -> bool:
    """No DT_STRING inputs (encoded images or strings): those are never decoded on the event loop."""
    return all(tensor.dtype != types_pb2.DT_STRING for tensor in request.inputs.values())


def _version(spec: model_pb2.ModelSpec) -> int | None:
    choice = spec.WhichOneof("version_choice")
    if choice == "version_label":
        raise NotFound(
            f"model {shown(spec.name)} has no version label {shown(spec.version_label)}: no labels are configured"
        )
    return spec.version.value if choice == "version" else None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    @grpc_errors
    async def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.PredictResponse:
        with self.plane.request(PROTOCOL) as scope:
            spec = request.model_spec
            scope.model = model = self.plane.model(spec.name, _version(spec))
            numbers = functools.partial(_numbers_only, request)
            return await self.plane.offload(model, request.ByteSize(), numbers, self._predict, model, request)

    def _predict(self, model: OnnxModel, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """Decode, run and encode one Predict request (in a worker thread, or inline when cheap)."""
        signature_name = request.model_spec.signature_name or CLASSIFY_SIGNATURE
        inputs: Tensors = {name: to_ndarray(name, tensor) for name, tensor in request.inputs.items()}
        outputs = self.plane.run(model, signature_name, inputs)
        wanted = list(request.output_filter) or list(outputs)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown:
            raise InvalidInput(f"output_filter names unknown output(s) {shown(unknown)}: outputs are {sorted(outputs)}")
        response = predict_pb2.PredictResponse(model_spec=tfs_metadata.model_spec(model, signature_name))
        for name in wanted:
            response.outputs[name].CopyFrom(to_tensor_proto(outputs[name]))
        return response

    @grpc_errors
    async def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.aio.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        with self.plane.request(PROTOCOL) as scope:
            spec = request.model_spec
            scope.model = model = self.plane.model(spec.name, _version(spec))
            # examples may carry encoded images in bytes lists: always decoded off the loop
            return await self.plane.offload(model, request.ByteSize(), lambda: False, self._classify, model, request)

    def _classify(
        self, model: OnnxModel, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse:
        """Decode, run and encode one Classify request (in a worker thread)."""
        signature_name = request.model_spec.signature_name or CLASSIFY_SIGNATURE
        signature = model.signature_def(signature_name)
        names, scores = tfs_classify.check_classify_signature(signature_name, signature)
        images = {alias: self.plane.images.batch(alias, image_layout(s)) for alias, s in signature.inputs.items()}
        inputs = tfs_classify.example_inputs(request.input, signature, images)
        outputs = self.plane.run(model, signature_name, inputs)
        pairs = tfs_classify.classifications(outputs, names, scores)
        return classification_pb2.ClassificationResponse(
            model_spec=tfs_metadata.model_spec(model, signature_name),
            result=tfs_classify.classification_result(pairs),
        )

    @grpc_errors
    async def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        model = self.plane.model(request.model_spec.name, _version(request.model_spec))
        fields = set(request.metadata_field)
        if fields != {tfs_metadata.SIGNATURE_DEF_FIELD}:
            raise InvalidInput(f"metadata_field must be ['{tfs_metadata.SIGNATURE_DEF_FIELD}'], got {sorted(fields)}")
        return tfs_metadata.model_metadata(model)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    @grpc_errors
    async def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.aio.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        version = _version(request.model_spec)
        model = self.plane.model(request.model_spec.name, version)
        models: list[OnnxModel] = [model] if version else self.plane.versions(request.model_spec.name)
        return tfs_metadata.model_status(models)


def add_tfs_services(server: grpc.aio.Server, plane: DataPlane) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(plane), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(plane), server)
