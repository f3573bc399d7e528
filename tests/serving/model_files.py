"""Tiny real ONNX models for serving tests: the exporter's graph contract, built with onnx.helper."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trainflow.datasets import load_split
from trainflow.export.signature import MODEL_FILE, SIGNATURE_FILE, image_classifier_signature


def linear_classifier_onnx(weights: np.ndarray, bias: np.ndarray) -> bytes:
    """images float32 [N,784] -> scores = softmax(images @ W + b) [N,10], classes = argmax int64 [N] (W's shape)."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["images", "W"], ["logits_raw"]),
            helper.make_node("Add", ["logits_raw", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
            helper.make_node("ArgMax", ["scores"], ["classes"], axis=1, keepdims=0),
        ],
        "linear",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", weights.shape[0]])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", weights.shape[1]]),
            helper.make_tensor_value_info("classes", TensorProto.INT64, ["N"]),
        ],
        initializer=[
            numpy_helper.from_array(weights.astype(np.float32), "W"),
            numpy_helper.from_array(bias.astype(np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def centroid_classifier_onnx(mnist_dir: Path, scale: float = 1.0) -> bytes:
    """A nearest-class-mean classifier fitted in closed form on the training split (~80% on MNIST)."""
    train = load_split(mnist_dir, "train")
    images = np.asarray(train.images, dtype=np.float32).reshape(len(train.labels), -1) / 255.0
    labels = np.asarray(train.labels)
    means = np.stack([images[labels == c].mean(axis=0) for c in range(10)])
    # argmin |x - m|^2 == argmax x.m - |m|^2 / 2; scaled so the softmax is not flat
    return linear_classifier_onnx(scale * means.T, -scale * 0.5 * (means**2).sum(axis=1))


def constant_classifier_onnx(cls: int) -> bytes:
    """Always answers `cls`: tells versions apart in hot-swap tests."""
    bias = np.full(10, -5.0)
    bias[cls] = 5.0
    return linear_classifier_onnx(np.zeros((784, 10)), bias)


def nan_classifier_onnx() -> bytes:
    """What training with `--learning-rate inf` exports: NaN weights, so every score is NaN."""
    return linear_classifier_onnx(np.full((784, 10), np.nan), np.zeros(10))


def publish(base: Path, version: int, model: bytes, signature: str | None = None) -> Path:
    """Write `<base>/<version>/` the way the exporter does: a temp dir renamed into place, signature last."""
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
    (tmp / MODEL_FILE).write_bytes(model)
    (tmp / SIGNATURE_FILE).write_text(signature if signature is not None else image_classifier_signature().to_json())
    os.rename(tmp, base / str(version))
    return base / str(version)


def mnist_test_images(mnist_dir: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` test images as float32 [count, 28, 28] in [0, 1], and their labels."""
    split = load_split(mnist_dir, "test")
    return np.asarray(split.images[:count], dtype=np.float32) / 255.0, np.asarray(split.labels[:count])


PAIR_CLASSES = ("cat", "dog", "bird")
PAIR_WEIGHTS = np.random.default_rng(7).normal(size=(7, 3)).astype(np.float32)


def pair_model_onnx() -> bytes:
    """A user's model with two inputs: ids int64 [N, 3] and x float32 [N, 4] -> scores [N, 3], label int64 [N]."""
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["ids"], ["ids_f"], to=TensorProto.FLOAT),
            helper.make_node("Concat", ["x", "ids_f"], ["features"], axis=1),
            helper.make_node("MatMul", ["features", "W"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        "pair",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 3]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
        ],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        initializer=[numpy_helper.from_array(PAIR_WEIGHTS, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def pair_expected(ids: np.ndarray, x: np.ndarray) -> np.ndarray:
    """What the pair model answers (its scores), computed with numpy."""
    logits = np.concatenate([x, ids.astype(np.float32)], axis=1) @ PAIR_WEIGHTS
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def pair_signature(ids_input: str = "ids") -> str:
    """The signature.json a user writes for the pair model (`ids_input` names the graph input `ids` reads)."""
    from trainflow.export.signature import (
        CLASS_NAMES_TENSOR,
        CLASSIFY_METHOD,
        PREDICT_METHOD,
        ModelSignature,
        SignatureDef,
        TensorSpec,
    )

    inputs = {"ids": TensorSpec(ids_input, "int64", (-1, 3)), "x": TensorSpec("x", "float32", (-1, 4))}
    scores = TensorSpec("probabilities", "float32", (-1, 3))
    predict = SignatureDef(PREDICT_METHOD, inputs, {"scores": scores, "label": TensorSpec("label", "int64", (-1,))})
    classify = SignatureDef(
        CLASSIFY_METHOD, inputs, {"classes": TensorSpec(CLASS_NAMES_TENSOR, "string", (-1, 3)), "scores": scores}
    )
    return ModelSignature({"predict": predict, "serving_default": classify}, PAIR_CLASSES).to_json()


def colour_model_onnx() -> bytes:
    """An RGB image model: images float32 [N, 3, 4, 4] -> scores = softmax(10 * mean per channel) [N, 3], classes."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["means"], axes=[2, 3], keepdims=0),
            helper.make_node("Mul", ["means", "ten"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
            helper.make_node("ArgMax", ["scores"], ["classes"], axis=1, keepdims=0),
        ],
        "colour",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("classes", TensorProto.INT64, ["N"]),
        ],
        initializer=[numpy_helper.from_array(np.array(10.0, np.float32), "ten")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def wide_model_onnx(inputs: int, width: int) -> bytes:
    """`inputs` float32 inputs x0.. of [N, width] -> y = the sum of their means [N, 1]: a probe-heavy signature."""
    names = [f"x{i}" for i in range(inputs)]
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", [n], [f"{n}_mean"], axes=[1], keepdims=1) for n in names]
        + [helper.make_node("Sum", [f"{n}_mean" for n in names], ["y"])],
        "wide",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", width]) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def wide_signature(inputs: int, width: int) -> str:
    """The signature.json of `wide_model_onnx(inputs, width)`: one predict signature."""
    from trainflow.export.signature import PREDICT_METHOD, ModelSignature, SignatureDef, TensorSpec

    feeds = {f"x{i}": TensorSpec(f"x{i}", "float32", (-1, width)) for i in range(inputs)}
    predict = SignatureDef(PREDICT_METHOD, feeds, {"y": TensorSpec("y", "float32", (-1, 1))})
    return ModelSignature({"predict": predict}, ()).to_json()
