"""`signature.json`: what a model version takes and returns, shared by the exporter and the server.

A version directory holds `model.onnx` and `signature.json`; `signature.json` is written last, so
a version whose signature is missing is incomplete and never served. Signature names follow
TF Serving's MNIST example: `predict_images` (input `images` float32 [-1, 784]; outputs `scores`
float32 [-1, 10] and `classes` int64 [-1]) and the classify signature `serving_default` (input
`inputs`; outputs `classes`, the class names, and `scores`, both [-1, 10]; classify pairs them best first).
A string output is not read from the ONNX graph: the server computes it from the class names and the
signature's float output, so its `onnx_name` (`class_names`) names no graph tensor.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from trainflow.errors import TrainflowError

MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature.json"
FORMAT = "trainflow-signature/v1"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
PREDICT_SIGNATURE = "predict_images"
CLASSIFY_SIGNATURE = "serving_default"
CLASS_NAMES_TENSOR = "class_names"  # the string output computed by the server, not a graph tensor
DTYPES = frozenset(
    {
        "float16",
        "float32",
        "float64",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "bool",
        "string",
    }
)
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}\Z")  # one file in the version directory, no path


class SignatureError(TrainflowError):
    """A signature.json that cannot be read or does not describe a servable model."""


@dataclass(frozen=True)
class TensorSpec:
    """`onnx_name` is the ONNX graph tensor this alias reads or is computed from; `image`: pixels in `value_range`."""

    onnx_name: str
    dtype: str  # numpy dtype name, or "string"
    shape: tuple[int, ...]  # -1 for a free dimension
    image: bool = False  # the server then also takes [N, H, W] and b64 PNG/JPEG images for it
    value_range: tuple[float, float] = (0.0, 1.0)  # an image's black and white (e.g. (0, 255) for raw pixels)

    def to_dict(self) -> dict[str, Any]:
        image: dict[str, Any] = {"image": self.image}  # always written: a missing flag means a legacy signature
        if self.image and self.value_range != (0.0, 1.0):
            image["range"] = list(self.value_range)
        return {"onnx_name": self.onnx_name, "dtype": self.dtype, "shape": list(self.shape), **image}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TensorSpec:
        name, dtype = str(raw["onnx_name"]), str(raw["dtype"])
        # signatures written before the flag existed: the exporter's image input was always `images`
        image = raw.get("image", name == "images" and dtype == "float32")
        if not isinstance(image, bool):
            raise TypeError(f"'image' of tensor {name!r} must be true or false")
        low, high = (float(v) for v in raw.get("range", (0.0, 1.0)))
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"'range' of tensor {name!r} must be two finite numbers, black below white")
        spec = cls(name, dtype, tuple(int(d) for d in raw["shape"]), image, (low, high))
        if spec.dtype not in DTYPES:
            raise ValueError(f"dtype {spec.dtype!r} is not one of {', '.join(sorted(DTYPES))}")
        if any(d < -1 for d in spec.shape):
            raise ValueError(f"shape {list(spec.shape)} has a dimension below -1")
        return spec


@dataclass(frozen=True)
class SignatureDef:
    method: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "inputs": {k: v.to_dict() for k, v in self.inputs.items()},
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SignatureDef:
        return cls(
            str(raw["method"]),
            {k: TensorSpec.from_dict(v) for k, v in raw["inputs"].items()},
            {k: TensorSpec.from_dict(v) for k, v in raw["outputs"].items()},
        )


@dataclass(frozen=True)
class ModelSignature:
    """Everything a server needs to know about one model version besides the ONNX bytes."""

    signatures: dict[str, SignatureDef]
    class_labels: tuple[str, ...]
    model_file: str = MODEL_FILE
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "model_file": self.model_file,
                "class_labels": list(self.class_labels),
                "signatures": {k: v.to_dict() for k, v in self.signatures.items()},
                "metadata": self.metadata,
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelSignature:
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT:
                raise SignatureError(f"unknown signature format {raw.get('format')!r}: expected {FORMAT}")
            signature = cls(
                signatures={str(k): SignatureDef.from_dict(v) for k, v in raw["signatures"].items()},
                class_labels=tuple(str(c) for c in raw.get("class_labels", ())),
                model_file=str(raw.get("model_file", MODEL_FILE)),
                metadata=dict(raw.get("metadata", {})),
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise SignatureError(f"malformed {SIGNATURE_FILE}: {str(exc)[:200]}") from None
        if not _FILE_NAME.match(signature.model_file) or ".." in signature.model_file:
            raise SignatureError(
                f"malformed {SIGNATURE_FILE}: model_file {signature.model_file[:100]!r} is not a "
                "plain file name in the version directory"
            )
        return signature


def image_classifier_signature(
    num_classes: int = 10,
    pixels: int = 784,
    metadata: dict[str, Any] | None = None,
    class_names: tuple[str, ...] | list[str] | None = None,
    input_shape: tuple[int, ...] | None = None,
    image: bool = True,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> ModelSignature:
    """The MNIST-style signature for an ONNX graph with input `images` and outputs `scores`, `classes`.

    `class_names` default to "0".."num_classes-1"; `input_shape` (per example, e.g. (3, 32, 32)) defaults
    to (pixels,); `image=False` for feature vectors (tabular data): no image shapes, no range check;
    `value_range` is what black and white are in the graph's input (e.g. (0, 255) for raw pixels).
    """
    names = tuple(str(c) for c in class_names) if class_names is not None else tuple(str(i) for i in range(num_classes))
    if len(names) != num_classes:
        raise SignatureError(f"{len(names)} class names for {num_classes} classes: give one name per class")
    images = TensorSpec("images", "float32", (-1, *(input_shape or (pixels,))), image, value_range)
    scores = TensorSpec("scores", "float32", (-1, num_classes))
    predict = SignatureDef(
        PREDICT_METHOD,
        inputs={"images": images},
        outputs={"scores": scores, "classes": TensorSpec("classes", "int64", (-1,))},
    )
    classify = SignatureDef(
        CLASSIFY_METHOD,
        inputs={"inputs": images},
        # the class names of every class beside their scores; classify answers the pairs sorted by score
        outputs={"classes": TensorSpec(CLASS_NAMES_TENSOR, "string", (-1, num_classes)), "scores": scores},
    )
    return ModelSignature(
        signatures={PREDICT_SIGNATURE: predict, CLASSIFY_SIGNATURE: classify},
        class_labels=names,
        metadata=dict(metadata or {}),
    )
