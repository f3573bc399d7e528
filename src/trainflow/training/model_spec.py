"""What rebuilds a model, as plain data: the launcher and the config read it without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainflow.training.choices import AUTO_MODEL

DEFAULT_MODEL = AUTO_MODEL
DEFAULT_HIDDEN_UNITS = 100
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)


def chosen_model(name: str, input_shape: tuple[int, ...]) -> str:
    """The model `--model NAME` builds for examples of `input_shape`: `auto` is the CNN for images, the MLP otherwise."""
    if name != AUTO_MODEL:
        return name
    return "cnn" if len(input_shape) == 3 else "mlp"


def why_chosen(input_shape: tuple[int, ...]) -> str:
    """One line saying which model `--model auto` chose for `input_shape`, and why."""
    shape = list(input_shape)
    if len(input_shape) == 3:
        return f"--model auto: cnn, as the dataset's examples are images {shape} [C, H, W]"
    return f"--model auto: mlp, as the dataset's examples are feature vectors {shape} (cnn takes images [C, H, W])"


@dataclass(frozen=True)
class ModelSpec:
    """What rebuilds a model: a built-in name or `module:attr`, its hidden units, input shape and class count."""

    name: str = "cnn"  # a concrete model: `auto` is resolved by `chosen_model` before a spec is made
    hidden_units: int = DEFAULT_HIDDEN_UNITS
    input_shape: tuple[int, ...] = IMAGE_SHAPE
    num_classes: int = NUM_CLASSES

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "hidden_units": self.hidden_units,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelSpec:
        """A spec as `to_dict` wrote it; one written before shapes were stored is an MNIST model."""
        shape = tuple(int(n) for n in raw.get("input_shape", IMAGE_SHAPE))
        return cls(str(raw["name"]), int(raw["hidden_units"]), shape, int(raw.get("num_classes", NUM_CLASSES)))
