"""TF Serving classify, shared by REST `:classify` and gRPC `Classify`: the signature check and the answer.

gRPC requests carry tf.Examples: each signature input is one feature per example (float_list or
int64_list values, flattened; for image inputs also one encoded PNG/JPEG in a bytes_list).
"""

from __future__ import annotations

import math

import numpy as np

from trainflow.export.signature import CLASSIFY_METHOD, CLASSIFY_SIGNATURE, SignatureDef, TensorSpec
from trainflow.serving.dataplane import Tensors
from trainflow.serving.errors import InvalidInput, shown
from trainflow.serving.images import ImageBatch
from trainflow.serving.protos.tensorflow.core.example import example_pb2, feature_pb2
from trainflow.serving.protos.tensorflow_serving.apis import classification_pb2, input_pb2
from trainflow.serving.tensor_specs import image_layout

MAX_EXAMPLES = 100_000


def check_classify_signature(signature_name: str, signature: SignatureDef, verb: str = "classify") -> tuple[str, str]:
    """The (class names, scores) output aliases of a classify signature; InvalidInput for any other signature."""
    names = [alias for alias, spec in signature.outputs.items() if spec.dtype == "string"]
    scores = [alias for alias, spec in signature.outputs.items() if spec.dtype != "string"]
    if verb != "classify" or signature.method != CLASSIFY_METHOD or len(names) != 1 or len(scores) != 1:
        raise InvalidInput(
            f"signature '{signature_name}' has method {signature.method}: :{verb} needs a "
            f"{verb} signature" + (f" such as '{CLASSIFY_SIGNATURE}'" if verb == "classify" else "")
        )
    return names[0], scores[0]


def classifications(outputs: Tensors, names: str, scores: str) -> list[list[tuple[str, float]]]:
    """Per example, (class name, score) pairs sorted by score, best first (ties in label order)."""
    return [
        sorted(zip(row_names, row_scores, strict=True), key=lambda pair: -pair[1])
        for row_names, row_scores in zip(outputs[names].tolist(), outputs[scores].tolist(), strict=True)
    ]


def classification_result(pairs: list[list[tuple[str, float]]]) -> classification_pb2.ClassificationResult:
    result = classification_pb2.ClassificationResult()
    for row in pairs:
        result.classifications.add().classes.extend(
            classification_pb2.Class(label=label, score=score) for label, score in row
        )
    return result


def example_inputs(request_input: input_pb2.Input, signature: SignatureDef, images: dict[str, ImageBatch]) -> Tensors:
    """The examples of a Classify request as one batch per signature input."""
    kind = request_input.WhichOneof("kind")
    if kind is None:
        raise InvalidInput("Classify needs input.example_list or input.example_list_with_context with examples")
    listed = getattr(request_input, kind)
    examples = list(listed.examples)
    context = listed.context.features.feature if kind == "example_list_with_context" else {}
    if not examples or len(examples) > MAX_EXAMPLES:
        raise InvalidInput(f"Classify needs 1 to {MAX_EXAMPLES} examples, got {len(examples)}")
    columns: dict[str, list[np.ndarray]] = {alias: [] for alias in signature.inputs}
    for example in examples:
        features = _merged(example, context, signature)
        for alias, spec in signature.inputs.items():
            columns[alias].append(_feature(alias, spec, features[alias], images[alias]))
    tensors: Tensors = {}
    for alias, values in columns.items():
        if len({v.shape for v in values}) != 1:
            raise InvalidInput(f"feature '{alias}' has a different number of values in different examples")
        tensors[alias] = np.stack(values)
    return tensors


def _merged(example: example_pb2.Example, context: object, signature: SignatureDef) -> dict[str, feature_pb2.Feature]:
    features = {**dict(context), **dict(example.features.feature)}  # type: ignore[call-overload]
    unknown = sorted(set(features) - set(signature.inputs))
    missing = sorted(set(signature.inputs) - set(features))
    if unknown or missing:
        raise InvalidInput(
            f"each example needs feature(s) {shown(list(signature.inputs))}: "
            + (f"missing {shown(missing)}" if missing else f"unknown {shown(unknown)}")
        )
    return features


def _feature(alias: str, spec: TensorSpec, feature: feature_pb2.Feature, images: ImageBatch) -> np.ndarray:
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        encoded = list(feature.bytes_list.value)
        if len(encoded) != 1 or image_layout(spec) is None:
            raise InvalidInput(
                f"feature '{alias}' is a bytes_list: send its values as a float_list or int64_list"
                + (" (or one encoded PNG/JPEG)" if image_layout(spec) else "")
            )
        return images.decode_bytes(encoded[0]).ravel()
    if kind is None:
        raise InvalidInput(f"feature '{alias}' holds no values")
    values = np.array(getattr(feature, kind).value, dtype=np.float32 if kind == "float_list" else np.int64)
    example = spec.shape[1:]
    free = [i for i, d in enumerate(example) if d == -1]
    known = math.prod(d for d in example if d != -1)
    if len(free) > 1 or (free and values.size % max(known, 1)) or (not free and values.size != known):
        raise InvalidInput(
            f"feature '{alias}' has {values.size} values: each example needs "
            f"{known if not free else 'a multiple of ' + str(known)} ({spec.dtype} "
            f"{list(spec.shape)} per batch)"
        )
    if image_layout(spec) is not None:
        return values
    shape = tuple(values.size // max(known, 1) if d == -1 else d for d in example)
    return values.reshape(shape)
