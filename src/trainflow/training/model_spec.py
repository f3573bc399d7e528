"""What rebuilds a model, as plain data: the launcher and the config read it without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_MODEL = "cnn"
DEFAULT_HIDDEN_UNITS = 100
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)


@dataclass(frozen=True)
class ModelSpec:
    """What rebuilds a model: a built-in name or `module:attr`, its hidden units, input shape and class count."""

    name: str = DEFAULT_MODEL
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
