"""KServe V2 tensors: datatype names, model metadata and checks shared by the V2 REST and gRPC adapters."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainflow.export.signature import PREDICT_SIGNATURE
from trainflow.serving.errors import InvalidInput, shown
from trainflow.serving.json_arrays import MAX_RANK, numbers_array
from trainflow.serving.runtime import OnnxModel, expected_shapes

PLATFORM = "onnxruntime_onnx"
SIGNATURE = PREDICT_SIGNATURE  # V2 speaks the ONNX graph's names: input `images`, outputs `scores`, `classes`
INPUT_DATATYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16}
OUTPUT_DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64", np.dtype(np.float64): "FP64",
                    np.dtype(np.int32): "INT32"}
SIGNATURE_DATATYPES = {"float32": "FP32", "int64": "INT64", "float64": "FP64", "int32": "INT32"}


def model_metadata(model: OnnxModel, versions: list[int]) -> dict[str, Any]:
    """V2 model metadata: name, versions, platform, inputs and outputs with datatypes and shapes."""
    signature = model.signature_def(SIGNATURE)
    return {
        "name": model.name,
        "versions": [str(v) for v in sorted(versions)],
        "platform": PLATFORM,
        "inputs": [_tensor(alias, spec.dtype, spec.shape) for alias, spec in signature.inputs.items()],
        "outputs": [_tensor(alias, spec.dtype, spec.shape) for alias, spec in signature.outputs.items()],
    }


def _tensor(name: str, dtype: str, shape: tuple[int, ...]) -> dict[str, Any]:
    return {"name": name, "datatype": SIGNATURE_DATATYPES.get(dtype, dtype.upper()), "shape": list(shape)}


def input_dtype(name: str, datatype: object, model: OnnxModel) -> type:
    """The numpy type of a V2 input datatype; InvalidInput for anything but a float type."""
    dtype = INPUT_DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InvalidInput(f"input {shown(name)} has datatype {shown(datatype)}: expected FP32, "
                           f"{expected_shapes(model.pixels)}")
    return dtype


def check_shape(name: str, shape: object) -> tuple[int, ...]:
    """A V2 shape as a tuple: at most MAX_RANK non-negative integers; InvalidInput otherwise."""
    if not isinstance(shape, (list, tuple)) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInput(f"input {shown(name)} has shape {shown(shape)}: expected a list of non-negative integers")
    if len(shape) > MAX_RANK:
        raise InvalidInput(f"input {shown(name)} has {len(shape)} dimensions: image inputs have 2 to {MAX_RANK}")
    return tuple(shape)


def from_buffer(name: str, data: bytes, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """A binary tensor, checked against its declared shape."""
    itemsize = np.dtype(dtype).itemsize
    expected = math.prod(shape) * itemsize
    if len(data) != expected:
        raise InvalidInput(f"input '{name}' has {len(data)} bytes of data: shape {list(shape)} of "
                           f"{np.dtype(dtype).name} needs {expected}")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def from_values(name: str, data: object, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """A JSON list of numbers (flat or nested), checked against its declared shape."""
    return shaped(name, numbers_array(data, name, dtype), shape)


def shaped(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`array` reshaped to its declared shape; InvalidInput when the number of values does not match."""
    if array.size != math.prod(shape):
        raise InvalidInput(f"input {shown(name)} has {array.size} values: shape {list(shape)} needs "
                           f"{math.prod(shape)}")
    return array.reshape(shape)


def output_datatype(value: np.ndarray) -> str:
    return OUTPUT_DATATYPES.get(value.dtype, "BYTES")
