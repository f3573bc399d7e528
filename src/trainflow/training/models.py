"""The models training knows: built-in `cnn` (default) and `mlp`, or any `module:attr` factory.

Every model takes images [N, 1, 28, 28] float32 in [0, 1] and returns 10 logits [N, 10].
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainflow.training.errors import TrainingError

DEFAULT_MODEL = "cnn"
DEFAULT_HIDDEN_UNITS = 100
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)


def mlp(hidden_units: int = DEFAULT_HIDDEN_UNITS) -> nn.Module:
    """The example's model (TensorFlow's dist_test mnist_replica): one ReLU hidden layer."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(28 * 28, hidden_units), nn.ReLU(), nn.Linear(hidden_units, NUM_CLASSES)
    )


def cnn(hidden_units: int = DEFAULT_HIDDEN_UNITS) -> nn.Module:
    """A small LeNet-style CNN: two 5x5 conv + max-pool blocks, then a hidden layer of `hidden_units`."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 16 x 12 x 12
        nn.Conv2d(16, 32, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 32 x 4 x 4
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, hidden_units),
        nn.ReLU(),
        nn.Linear(hidden_units, NUM_CLASSES),
    )


BUILTIN_MODELS = {"cnn": cnn, "mlp": mlp}


@dataclass(frozen=True)
class ModelSpec:
    """What rebuilds a model: a built-in name or `module:attr`, and the hidden units passed to built-ins."""

    name: str = DEFAULT_MODEL
    hidden_units: int = DEFAULT_HIDDEN_UNITS

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hidden_units": self.hidden_units}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelSpec:
        return cls(str(raw["name"]), int(raw["hidden_units"]))


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


def _call_factory(name: str, factory: Any, hidden_units: int) -> Any:
    if not callable(factory):
        raise TrainingError(
            f"--model '{name}' is a {type(factory).__name__}, not a callable returning a torch.nn.Module"
        )
    try:
        takes_hidden = "hidden_units" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_hidden = False
    try:
        return factory(hidden_units=hidden_units) if takes_hidden else factory()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a user's factory can fail in any way: reported as one line
        raise TrainingError(f"--model '{name}': the factory failed: {_describe(exc)}") from None


def build_model(spec: ModelSpec) -> nn.Module:
    """A new model for `spec`; a factory that takes `hidden_units` gets it."""
    if spec.hidden_units < 1:
        raise TrainingError(f"--hidden-units must be at least 1, got {spec.hidden_units}")
    model = _call_factory(spec.name, _factory(spec.name), spec.hidden_units)
    if not isinstance(model, nn.Module):
        raise TrainingError(f"--model '{spec.name}' returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def check_model(spec: ModelSpec) -> nn.Module:
    """Build the model and check it maps [N, 1, 28, 28] float32 to [N, 10] logits."""
    model = build_model(spec)
    probe = torch.zeros(2, *IMAGE_SHAPE)
    try:
        with torch.no_grad():
            out = model.eval()(probe)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a user's factory can fail in any way: reported as one line
        raise TrainingError(
            f"--model '{spec.name}' fails on a [2, 1, 28, 28] float32 batch: {_describe(exc)}"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, NUM_CLASSES):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TrainingError(
            f"--model '{spec.name}' returns {got} for a batch of 2 images: expected logits of shape (2, {NUM_CLASSES})"
        )
    if not bool(torch.isfinite(out).all()):
        raise TrainingError(
            f"--model '{spec.name}' returns NaN or infinite logits for blank images: "
            "check how the factory initialises its weights"
        )
    return model.train()
