"""TF Serving model status and metadata as protos, shared by the TF Serving REST and gRPC adapters."""

from __future__ import annotations

from google.protobuf import any_pb2

from trainflow.serving.protos.tensorflow.core.framework import tensor_shape_pb2, types_pb2
from trainflow.serving.protos.tensorflow.core.protobuf import meta_graph_pb2
from trainflow.serving.protos.tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2
from trainflow.serving.runtime import OnnxModel

DTYPES = {
    "float32": types_pb2.DT_FLOAT,
    "float64": types_pb2.DT_DOUBLE,
    "float16": types_pb2.DT_HALF,
    "int64": types_pb2.DT_INT64,
    "int32": types_pb2.DT_INT32,
    "int16": types_pb2.DT_INT16,
    "int8": types_pb2.DT_INT8,
    "uint8": types_pb2.DT_UINT8,
    "string": types_pb2.DT_STRING,
}
SIGNATURE_DEF_FIELD = "signature_def"


def model_spec(model: OnnxModel, signature_name: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=model.name, signature_name=signature_name)
    spec.version.value = model.version
    return spec


def model_status(models: list[OnnxModel]) -> get_model_status_pb2.GetModelStatusResponse:
    """Every listed version AVAILABLE with status OK (refused versions are never listed, as in TF Serving)."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for model in sorted(models, key=lambda m: -m.version):
        status = response.model_version_status.add(
            version=model.version, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE
        )
        status.status.error_message = ""
    return response


def signature_def_map(model: OnnxModel) -> get_model_metadata_pb2.SignatureDefMap:
    result = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in model.signature.signatures.items():
        target = result.signature_def[name]
        target.method_name = signature.method
        for alias, spec in signature.inputs.items():
            _tensor_info(target.inputs[alias], spec.onnx_name, spec.dtype, spec.shape)
        for alias, spec in signature.outputs.items():
            _tensor_info(target.outputs[alias], spec.onnx_name, spec.dtype, spec.shape)
    return result


def model_metadata(model: OnnxModel) -> get_model_metadata_pb2.GetModelMetadataResponse:
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=model_spec(model))
    packed = any_pb2.Any()
    packed.Pack(signature_def_map(model))
    response.metadata[SIGNATURE_DEF_FIELD].CopyFrom(packed)
    return response


def _tensor_info(info: meta_graph_pb2.TensorInfo, name: str, dtype: str, shape: tuple[int, ...]) -> None:
    info.name = name
    info.dtype = DTYPES.get(dtype, types_pb2.DT_INVALID)
    info.tensor_shape.CopyFrom(
        tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape])
    )
