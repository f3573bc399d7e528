"""TF Serving gRPC adapter: `tensorflow.serving.PredictionService` (Predict, GetModelMetadata) and `ModelService`."""

from __future__ import annotations

import math

import grpc
import numpy as np

from trainflow.export.signature import CLASSIFY_SIGNATURE
from trainflow.serving import tfs_metadata
from trainflow.serving.dataplane import DataPlane, Tensors
from trainflow.serving.errors import InvalidInput, NotFound, shown
from trainflow.serving.grpc_status import grpc_errors
from trainflow.serving.json_arrays import MAX_RANK
from trainflow.serving.protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from trainflow.serving.protos.tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                                               model_pb2, model_service_pb2_grpc, predict_pb2,
                                                               prediction_service_pb2_grpc)
from trainflow.serving.runtime import OnnxModel

PROTOCOL = "tfs-grpc"
_INPUT_DTYPES = {types_pb2.DT_FLOAT: (np.float32, "float_val"), types_pb2.DT_DOUBLE: (np.float64, "double_val")}


def to_ndarray(name: str, tensor: tensor_pb2.TensorProto) -> np.ndarray:
    """A float TensorProto (tensor_content or float_val/double_val) as an array of its declared shape."""
    if tensor.dtype not in _INPUT_DTYPES:
        raise InvalidInput(f"input {shown(name)} has dtype {_dtype_name(tensor.dtype)}: expected DT_FLOAT")
    dtype, field = _INPUT_DTYPES[tensor.dtype]
    shape = tuple(d.size for d in tensor.tensor_shape.dim)
    if len(shape) > MAX_RANK:
        raise InvalidInput(f"input {shown(name)} has {len(shape)} dimensions: image inputs have 2 to {MAX_RANK}")
    if any(d < 0 for d in shape):
        raise InvalidInput(f"input {shown(name)} has shape {list(shape)}: sizes must be known and non-negative")
    filled = sorted(f.name for f, _ in tensor.ListFields() if f.name.endswith("_val") or f.name == "tensor_content")
    if len(filled) > 1 or (filled and filled[0] not in (field, "tensor_content")):
        raise InvalidInput(f"input {shown(name)} of dtype {_dtype_name(tensor.dtype)} sends {' and '.join(filled)}: "
                           f"put its values in tensor_content or {field}, one of them")
    content = tensor.tensor_content
    if content and len(content) % np.dtype(dtype).itemsize:
        raise InvalidInput(f"input {shown(name)}: tensor_content of {len(content)} bytes is not a whole number of "
                           "values")
    values = np.frombuffer(content, dtype=dtype) if content else np.array(getattr(tensor, field), dtype=dtype)
    if values.size != math.prod(shape):
        raise InvalidInput(f"input {shown(name)} has {values.size} values: shape {list(shape)} needs "
                           f"{math.prod(shape)}")
    return values.reshape(shape)


def _dtype_name(code: int) -> str:
    try:
        return types_pb2.DataType.Name(code)
    except ValueError:
        return str(code)


def to_tensor_proto(value: np.ndarray) -> tensor_pb2.TensorProto:
    """float32 -> float_val, int64 -> int64_val, strings -> string_val (what TF Serving's clients read)."""
    tensor = tensor_pb2.TensorProto()
    tensor.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in value.shape)
    if value.dtype == np.float32:
        tensor.dtype = types_pb2.DT_FLOAT
        tensor.float_val.extend(value.ravel().tolist())
    elif value.dtype == np.int64:
        tensor.dtype = types_pb2.DT_INT64
        tensor.int64_val.extend(value.ravel().tolist())
    else:
        tensor.dtype = types_pb2.DT_STRING
        tensor.string_val.extend(str(v).encode() for v in value.ravel())
    return tensor


def _version(spec: model_pb2.ModelSpec) -> int | None:
    choice = spec.WhichOneof("version_choice")
    if choice == "version_label":
        raise NotFound(f"model {shown(spec.name)} has no version label {shown(spec.version_label)}: no labels are "
                       "configured")
    return spec.version.value if choice == "version" else None


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    @grpc_errors
    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext) -> predict_pb2.PredictResponse:
        with self.plane.request(PROTOCOL) as scope:
            spec = request.model_spec
            scope.model = model = self.plane.model(spec.name, _version(spec))
            signature_name = spec.signature_name or CLASSIFY_SIGNATURE
            inputs: Tensors = {name: to_ndarray(name, tensor) for name, tensor in request.inputs.items()}
            outputs = self.plane.run(model, signature_name, inputs)
            wanted = list(request.output_filter) or list(outputs)
            unknown = sorted(set(wanted) - set(outputs))
            if unknown:
                raise InvalidInput(f"output_filter names unknown output(s) {shown(unknown)}: outputs are "
                                   f"{sorted(outputs)}")
            response = predict_pb2.PredictResponse(model_spec=tfs_metadata.model_spec(model, signature_name))
            for name in wanted:
                response.outputs[name].CopyFrom(to_tensor_proto(outputs[name]))
            return response

    @grpc_errors
    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,
                         context: grpc.ServicerContext) -> get_model_metadata_pb2.GetModelMetadataResponse:
        model = self.plane.model(request.model_spec.name, _version(request.model_spec))
        fields = set(request.metadata_field)
        if fields != {tfs_metadata.SIGNATURE_DEF_FIELD}:
            raise InvalidInput(f"metadata_field must be ['{tfs_metadata.SIGNATURE_DEF_FIELD}'], got {sorted(fields)}")
        return tfs_metadata.model_metadata(model)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    @grpc_errors
    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest,
                       context: grpc.ServicerContext) -> get_model_status_pb2.GetModelStatusResponse:
        version = _version(request.model_spec)
        model = self.plane.model(request.model_spec.name, version)
        models: list[OnnxModel] = [model] if version else list(self.plane.repository.versions.values())
        return tfs_metadata.model_status(models)


def add_tfs_services(server: grpc.Server, plane: DataPlane) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(plane), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(plane), server)
