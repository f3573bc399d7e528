"""What a workflow's model takes, from its dataset's descriptor: a drawing pad, an image upload or a form.

The dashboard asks once per workflow; the answer also names the classes for the score bars. The dataset is
the output a step declares of kind dataset; a workflow whose dataset cannot be read here (another node's
cache, a model-deploy run) is taken to serve MNIST.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainflow.datasets import DatasetError, load_descriptor
from trainflow.serving.tensor_specs import MAX_EXAMPLE_VALUES
from trainflow.ui.digits import MAX_PIXELS, SIDE, digit_from_png
from trainflow.ui.errors import UiError
from trainflow.workflows.backend import WorkflowInfo
from trainflow.workflows.endpoints import dataset

DATA_URL_PREFIXES = ("data:image/png;base64,", "data:image/jpeg;base64,")


@dataclass(frozen=True)
class ModelInput:
    """`kind`: "digit" (one-channel images: drawn), "image" (colour images: uploaded) or "table" (a form)."""

    kind: str
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "input_shape": list(self.input_shape), "class_names": list(self.class_names)}


MNIST_INPUT = ModelInput("digit", (1, SIDE, SIDE), tuple(str(d) for d in range(10)))


def model_input(info: WorkflowInfo) -> ModelInput:
    """The input of the model `info` trains and serves, from the descriptor of its dataset output."""
    path = dataset(info)
    if not path:
        return MNIST_INPUT
    try:
        descriptor = load_descriptor(Path(path))
    except (DatasetError, OSError):
        return MNIST_INPUT
    _check_size(descriptor.input_shape, info.name, path)
    if descriptor.kind == "table":
        return ModelInput("table", descriptor.input_shape, descriptor.class_names)
    kind = "digit" if descriptor.input_shape[0] == 1 else "image"
    return ModelInput(kind, descriptor.input_shape, descriptor.class_names)


def _check_size(shape: tuple[int, ...], workflow: str, path: str) -> None:
    """Refuse an example shape that would have the dashboard allocate more than a model server takes."""
    if any(d < 1 for d in shape) or math.prod(shape) > MAX_EXAMPLE_VALUES:
        raise UiError(
            f"workflow {workflow}'s dataset ({path}) declares examples of shape {list(shape)}: the dashboard "
            f"predicts on examples of at most {MAX_EXAMPLE_VALUES} values, every dimension at least 1; "
            "sync the dataset again (`trainflow data sync`)"
        )


def example_from_request(body: Any, model: ModelInput) -> np.ndarray:
    """`{"image": data URL}` (drawn or uploaded) or `{"features": [numbers]}` -> one flat float32 example."""
    if not isinstance(body, dict) or len({"image", "features"} & set(body)) != 1:
        wanted = '"features": [numbers]' if model.kind == "table" else '"image": "data:image/png;base64,..."'
        raise UiError(f"send JSON with {wanted}")
    if "features" in body:
        return _features(body["features"], model)
    if model.kind == "table":
        raise UiError(f'this model takes {math.prod(model.input_shape)} feature values: send {{"features": [...]}}')
    data = _image_bytes(body["image"])
    if model.kind == "digit":
        digit = digit_from_png(data)  # centred like MNIST, white on black, then scaled to the model's size
        return _resized(digit.reshape(SIDE, SIDE), model.input_shape[1:])
    return _colour_image(data, model.input_shape)


def _image_bytes(image: Any) -> bytes:
    if not isinstance(image, str):
        raise UiError('"image" must be a PNG or JPEG data URL (data:image/png;base64,...)')
    for prefix in DATA_URL_PREFIXES:
        image = image.removeprefix(prefix)
    try:
        return base64.b64decode(image, validate=True)
    except ValueError:
        raise UiError('"image" is not valid base64: send a data URL of a PNG or JPEG') from None


def _features(values: Any, model: ModelInput) -> np.ndarray:
    count = math.prod(model.input_shape)
    if model.kind != "table":
        raise UiError('this model takes images: send {"image": "data:image/png;base64,..."}')
    if not isinstance(values, list) or len(values) != count:
        raise UiError(f'"features" must be a list of {count} numbers, one per feature')
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise UiError(f'"features" must be {count} finite numbers (no strings, booleans or nulls)')
    return np.asarray(values, dtype=np.float32)


def _resized(pixels: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    from PIL import Image

    height, width = size
    if (height, width) == pixels.shape:
        return pixels.reshape(-1).astype(np.float32)
    image = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    resized = image.resize((width, height), Image.Resampling.BILINEAR)
    return (np.asarray(resized, dtype=np.float32) / 255.0).reshape(-1)


def _colour_image(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """An uploaded photo -> float32 [C*H*W] in [0, 1], resized to the model's size (aspect not kept)."""
    from PIL import Image

    channels, height, width = shape
    try:
        with Image.open(io.BytesIO(data), formats=("PNG", "JPEG")) as image:
            if image.size[0] * image.size[1] > MAX_PIXELS:
                raise UiError(f"the image is {image.size[0]}x{image.size[1]} pixels, more than {MAX_PIXELS}")
            mode = "RGBA" if channels == 4 else "RGB"
            picture = image.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
    except UiError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types on bad files
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UiError(f"the image could not be read ({reason}): upload a PNG or JPEG") from None
    pixels = np.asarray(picture, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return np.ascontiguousarray(pixels).reshape(-1)
