"""KServe V2 tensors: datatype names, model metadata and checks shared by the V2 REST and gRPC adapters."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainflow import __version__
from trainflow.serving.errors import InvalidInput, shown
from trainflow.serving.json_arrays import MAX_RANK, numbers_array
from trainflow.serving.runtime import OnnxModel
from trainflow.serving.tensor_specs import expected

PLATFORM = "onnxruntime_onnx"
INPUT_DATATYPES = {
    "FP32": np.float32,
    "FP64": np.float64,
    "FP16": np.float16,
    "INT64": np.int64,
    "INT32": np.int32,
    "INT16": np.int16,
    "INT8": np.int8,
    "UINT8": np.uint8,
}
SIGNATURE_DATATYPES = {np.dtype(v).name: k for k, v in INPUT_DATATYPES.items()} | {"string": "BYTES"}
OUTPUT_DATATYPES = {np.dtype(v): k for k, v in INPUT_DATATYPES.items()}
_FLOATS = {np.float16, np.float32, np.float64}


def signature_name(model: OnnxModel) -> str:
    """V2 speaks one signature's names (`predict_images` for trainflow's models: input `images`, outputs `scores`,
    `classes`)."""
    return model.default_tensor_signature


EXTENSIONS = ["binary_tensor_data"]  # the REST binary tensor extension


def server_metadata() -> dict[str, Any]:
    """V2 server metadata, for both protocols: name, version and extensions."""
    return {"name": "trainflow", "version": __version__, "extensions": EXTENSIONS}


def model_metadata(model: OnnxModel, versions: list[int]) -> dict[str, Any]:
    """V2 model metadata: name, versions, platform, inputs and outputs with datatypes and shapes."""
    signature = model.signature_def(signature_name(model))
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
    """The numpy type of a V2 input datatype; InvalidInput naming the input's datatype for anything else."""
    dtype = INPUT_DATATYPES.get(datatype) if isinstance(datatype, str) else None
    spec = model.signature_def(signature_name(model)).inputs.get(name)
    if spec is None:
        return dtype or np.float32  # the data plane refuses the unknown input by name
    if dtype is None or (dtype in _FLOATS) != spec.dtype.startswith("float"):
        wanted = SIGNATURE_DATATYPES.get(spec.dtype, spec.dtype.upper())
        raise InvalidInput(f"input {shown(name)} has datatype {shown(datatype)}: expected {wanted}, {expected(spec)}")
    return dtype


def check_shape(name: str, shape: object) -> tuple[int, ...]:
    """A V2 shape as a tuple: at most MAX_RANK non-negative integers; InvalidInput otherwise."""
    if not isinstance(shape, (list, tuple)) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInput(f"input {shown(name)} has shape {shown(shape)}: expected a list of non-negative integers")
    if len(shape) > MAX_RANK:
        raise InvalidInput(f"input {shown(name)} has {len(shape)} dimensions: inputs have at most {MAX_RANK}")
    return tuple(shape)


def from_buffer(name: str, data: bytes, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """A binary tensor, checked against its declared shape."""
    itemsize = np.dtype(dtype).itemsize
    expected = math.prod(shape) * itemsize
    if len(data) != expected:
        raise InvalidInput(
            f"input '{name}' has {len(data)} bytes of data: shape {list(shape)} of "
            f"{np.dtype(dtype).name} needs {expected}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def from_values(name: str, data: object, dtype: type, shape: tuple[int, ...], booleans: bool = True) -> np.ndarray:
    """A JSON list of numbers (flat or nested), checked against its declared shape; `booleans=False`: the JSON
    text held no true/false (`json_arrays.may_hold_booleans`)."""
    return shaped(name, numbers_array(data, name, dtype, booleans), shape)


def shaped(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`array` reshaped to its declared shape; InvalidInput when the number of values does not match."""
    if array.size != math.prod(shape):
        raise InvalidInput(f"input {shown(name)} has {array.size} values: shape {list(shape)} needs {math.prod(shape)}")
    return array.reshape(shape)


def output_datatype(value: np.ndarray) -> str:
    return OUTPUT_DATATYPES.get(value.dtype, "BYTES")


def classification_count(name: str, value: object) -> int:
    """A V2 output's `classification` parameter (Triton's top-k extension): a positive whole number, 0 if absent."""
    if value is None:
        return 0
    if type(value) is not int or value < 1:
        raise InvalidInput(
            f"output {shown(name)}: 'classification' is {shown(value)}: ask for the top k classes "
            "with a positive whole number"
        )
    return value


def classify_output(model: OnnxModel, name: str, value: np.ndarray, count: int) -> np.ndarray:
    """Triton's classification extension: the top `count` of each row as "score:index[:label]", best first."""
    if value.ndim != 2 or value.dtype.kind not in "fiu":
        raise InvalidInput(
            f"output {shown(name)} has shape {list(value.shape)}: 'classification' needs scores of shape [N, classes]"
        )
    labels = model.signature.class_labels if len(model.signature.class_labels) == value.shape[1] else ()
    order = np.argsort(-value, axis=1, kind="stable")[:, :count]
    rows = [
        [f"{float(row[i]):f}:{i}" + (f":{labels[i]}" if labels else "") for i in top]
        for row, top in zip(value, order, strict=True)
    ]
    return np.array(rows, dtype=object).reshape(len(rows), order.shape[1])


def bytes_tensor(value: np.ndarray) -> bytes:
    """A BYTES tensor in Triton's binary layout: each element as a 4-byte little-endian length, then its bytes."""
    parts = []
    for item in value.ravel():
        data = str(item).encode()
        parts += [len(data).to_bytes(4, "little"), data]
    return b"".join(parts)
