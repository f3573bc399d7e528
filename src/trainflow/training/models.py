"""The models training knows: built-in `cnn` (default) and `mlp`, or any `module:attr` factory.

A model takes a float32 batch [N, *input_shape] (normalized as the dataset's descriptor says) and
returns logits [N, num_classes]. The defaults are MNIST's: input (1, 28, 28), 10 classes.
"""

from __future__ import annotations

import importlib
import inspect
import math
from typing import Any

import torch
from torch import nn

from trainflow.training.choices import BUILTIN_MODEL_NAMES
from trainflow.training.errors import TrainingError
from trainflow.training.model_spec import DEFAULT_HIDDEN_UNITS, IMAGE_SHAPE, NUM_CLASSES, ModelSpec

_POOLED_SIDE = 4  # the CNN's feature map is pooled down to at most 4x4 before its hidden layer


def _bin_averages(size: int, bins: int) -> torch.Tensor:
    """[bins, size]: row k averages the inputs of adaptive pooling's bin k, [floor(k*size/bins), ceil((k+1)*size/bins))."""
    matrix = torch.zeros(bins, size)
    for k in range(bins):
        start, end = (k * size) // bins, -((-(k + 1) * size) // bins)
        matrix[k, start:end] = 1.0 / (end - start)
    return matrix


class BinAveragePool(nn.Module):
    """`nn.AdaptiveAvgPool2d(bins)` for maps of one known size, as two matrix products.

    torch's ONNX exporter translates adaptive pooling only when the output divides the input and the
    map's size is known in the traced graph (a 32x32 image's 5x5 map is neither); fixed averaging
    matrices export at every size and pool the same bins. They are no parameters: checkpoints
    written with `nn.AdaptiveAvgPool2d` load unchanged.
    """

    def __init__(self, size: tuple[int, int], bins: tuple[int, int]) -> None:
        super().__init__()
        self.rows: torch.Tensor
        self.columns: torch.Tensor
        self.register_buffer("rows", _bin_averages(size[0], bins[0]), persistent=False)
        self.register_buffer("columns", _bin_averages(size[1], bins[1]).T.contiguous(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rows @ x @ self.columns


def mlp(
    hidden_units: int = DEFAULT_HIDDEN_UNITS,
    input_shape: tuple[int, ...] = IMAGE_SHAPE,
    num_classes: int = NUM_CLASSES,
) -> nn.Module:
    """The example's model (TensorFlow's dist_test mnist_replica): one ReLU hidden layer over the flat input."""
    features = math.prod(input_shape)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(features, hidden_units), nn.ReLU(), nn.Linear(hidden_units, num_classes)
    )


def cnn(
    hidden_units: int = DEFAULT_HIDDEN_UNITS,
    input_shape: tuple[int, ...] = IMAGE_SHAPE,
    num_classes: int = NUM_CLASSES,
) -> nn.Module:
    """A small LeNet-style CNN: two 5x5 conv + max-pool blocks, then a hidden layer of `hidden_units`.

    Images of 16 pixels or more a side use unpadded convolutions (MNIST: 28 -> 24 -> 12 -> 8 -> 4);
    smaller ones are padded so the blocks keep their size; feature maps over 4x4 are average-pooled to 4x4.
    """
    if len(input_shape) != 3:
        raise TrainingError(
            f"--model cnn takes images [C, H, W], but the dataset's examples are {list(input_shape)}: "
            "use --model mlp for feature vectors"
        )
    channels, height, width = input_shape
    if min(height, width) < 4:
        raise TrainingError(f"--model cnn needs images of at least 4x4 pixels, got {height}x{width}: use --model mlp")
    pad = 0 if min(height, width) >= 16 else 2
    height, width = (height - 4 + 2 * pad) // 2, (width - 4 + 2 * pad) // 2
    height, width = (height - 4 + 2 * pad) // 2, (width - 4 + 2 * pad) // 2
    layers: list[nn.Module] = [
        nn.Conv2d(channels, 16, 5, padding=pad),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=pad),
        nn.ReLU(),
        nn.MaxPool2d(2),
    ]
    if height > _POOLED_SIDE or width > _POOLED_SIDE:
        pooled = min(height, _POOLED_SIDE), min(width, _POOLED_SIDE)
        layers.append(BinAveragePool((height, width), pooled))
        height, width = pooled
    return nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Linear(32 * height * width, hidden_units),
        nn.ReLU(),
        nn.Linear(hidden_units, num_classes),
    )


BUILTIN_MODELS = dict(zip(BUILTIN_MODEL_NAMES, (cnn, mlp), strict=True))


def _describe(exc: BaseException) -> str:
    """`Type: first line of the message`, or just the type when there is no message."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


def _factory(name: str) -> Any:
    if name in BUILTIN_MODELS:
        return BUILTIN_MODELS[name]
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise TrainingError(
            f"--model '{name}' is neither {' nor '.join(BUILTIN_MODELS)} nor module:attr (e.g. mypkg.models:build)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainingError(
            f"--model '{name}': cannot import module '{module_name}' ({exc}): install it or fix PYTHONPATH"
        ) from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a user module that fails (or exits) while importing: report it
        raise TrainingError(f"--model '{name}': importing '{module_name}' failed: {_describe(exc)}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise TrainingError(f"--model '{name}': module '{module_name}' has no attribute '{attr}'") from None


def _call_factory(spec: ModelSpec, factory: Any) -> Any:
    """Call the factory with those of hidden_units, input_shape and num_classes its signature names."""
    if not callable(factory):
        raise TrainingError(
            f"--model '{spec.name}' is a {type(factory).__name__}, not a callable returning a torch.nn.Module"
        )
    offered = {"hidden_units": spec.hidden_units, "input_shape": spec.input_shape, "num_classes": spec.num_classes}
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    kwargs = {key: value for key, value in offered.items() if key in parameters}
    try:
        return factory(**kwargs)
    except TrainingError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a user's factory can fail in any way: reported as one line
        raise TrainingError(f"--model '{spec.name}': the factory failed: {_describe(exc)}") from None


def build_model(spec: ModelSpec) -> nn.Module:
    """A new model for `spec`; a factory gets those of hidden_units, input_shape and num_classes it takes."""
    if spec.hidden_units < 1:
        raise TrainingError(f"--hidden-units must be at least 1, got {spec.hidden_units}")
    model = _call_factory(spec, _factory(spec.name))
    if not isinstance(model, nn.Module):
        raise TrainingError(f"--model '{spec.name}' returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def check_model(spec: ModelSpec) -> nn.Module:
    """Build the model and check it maps [N, *input_shape] float32 to [N, num_classes] logits."""
    model = build_model(spec)
    probe = torch.zeros(2, *spec.input_shape)
    batch = ", ".join(str(n) for n in probe.shape)
    try:
        with torch.no_grad():
            out = model.eval()(probe)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a user's factory can fail in any way: reported as one line
        raise TrainingError(
            f"--model '{spec.name}' fails on a [{batch}] float32 batch (the dataset's input shape): {_describe(exc)}"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, spec.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TrainingError(
            f"--model '{spec.name}' returns {got} for a batch of 2 examples: expected logits of shape "
            f"(2, {spec.num_classes}), one per class of the dataset"
        )
    if not bool(torch.isfinite(out).all()):
        raise TrainingError(
            f"--model '{spec.name}' returns NaN or infinite logits for blank examples: "
            "check how the factory initialises its weights"
        )
    return model.train()
