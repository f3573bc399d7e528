"""Try the model: a drawn digit (preprocessed like MNIST), an uploaded image or a row of features, sent to the
workflow's model server."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from trainflow.client import ClientError, ServerUnreachable, predict_images
from trainflow.ui.digits import SIDE, digit_from_png
from trainflow.ui.errors import ModelFailed, ModelUnavailable, UiError
from trainflow.ui.model_input import MNIST_INPUT, ModelInput, example_from_request
from trainflow.ui.views import served_model
from trainflow.workflows.backend import WorkflowInfo

PIXELS = SIDE * SIDE
PNG_PREFIX = "data:image/png;base64,"


def digit_from_request(body: Any) -> np.ndarray:
    """`{"image": "data:image/png;base64,..."}` (a canvas) or `{"instances": [[784 floats in 0..1]]}` -> [784]."""
    if not isinstance(body, dict) or ("image" in body) == ("instances" in body):
        raise UiError(
            'send JSON with either "image" (a PNG data URL of the canvas) or "instances" ([[784 floats in 0..1]])'
        )
    if "image" in body:
        image = body["image"]
        if not isinstance(image, str):
            raise UiError('"image" must be a PNG data URL (data:image/png;base64,...)')
        try:
            return digit_from_png(base64.b64decode(image.removeprefix(PNG_PREFIX), validate=True))
        except ValueError:
            raise UiError('"image" is not valid base64: send canvas.toDataURL("image/png")') from None
    return _pixels(body["instances"])


def _pixels(instances: Any) -> np.ndarray:
    try:
        array = np.asarray(instances)
    except (TypeError, ValueError):
        raise UiError('"instances" must be numbers: [[784 floats in 0..1]]') from None
    if array.dtype.kind not in "iuf":  # strings, booleans, nulls and objects are not pixels
        raise UiError(f'"instances" must be numbers, not {_kind(array)}: [[784 floats in 0..1]]')
    array = array.astype(np.float32)
    if array.shape not in ((1, PIXELS), (PIXELS,)):
        raise UiError(f'"instances" has shape {list(array.shape)}: send one image as [[784 floats in 0..1]]')
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise UiError('"instances" values must be between 0 and 1 (white digit on black)')
    return array.reshape(PIXELS)


def _kind(array: np.ndarray) -> str:
    return {"b": "true/false", "U": "strings", "S": "strings", "O": "null or mixed values"}.get(
        array.dtype.kind, str(array.dtype)
    )


def example_for(body: Any, model: ModelInput) -> np.ndarray:
    """The flat example a predict request asks about: MNIST's canvas or pixels, else what `model` takes."""
    if model.kind == "digit" and model.input_shape == MNIST_INPUT.input_shape:
        return digit_from_request(body)
    return example_from_request(body, model)


def predict_digit(
    info: WorkflowInfo, digit: np.ndarray, timeout: float = 10.0, model: ModelInput = MNIST_INPUT
) -> dict[str, Any]:
    """Ask the workflow's served model about one flat example: class, scores, class names, and (for drawn
    digits) the input it saw."""
    server = served_model(info)
    if server is None or server.rest_url is None:
        raise ModelUnavailable(
            f"workflow {info.name} serves no model yet: wait for its model server step "
            "(or run `trainflow submit model-deploy -p workflow=...`)"
        )
    try:
        prediction = predict_images(server.rest_url, "rest", digit[None], server.model_name, timeout)[0]
    except ServerUnreachable:
        raise ModelUnavailable(
            f"the model server of {info.name} at {server.rest_url} is not answering: "
            f"check `trainflow services`, or `trainflow retry {info.name}`"
        ) from None
    except ClientError as exc:
        raise ModelFailed(f"the model server of {info.name} refused the {model.kind}: {exc.message}") from None
    answer = {
        "class": prediction.cls,
        "scores": list(prediction.scores),
        "class_names": list(model.class_names),
        "model": {"rest_url": server.rest_url, "name": server.model_name, "version": server.version},
    }
    if model.kind == "digit":
        answer["input"] = [round(float(v), 4) for v in digit]
        answer["input_side"] = model.input_shape[-1]
    return answer
