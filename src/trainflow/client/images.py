"""Examples for the model: image files and arrays -> the float32 batch its input takes, and digits as text pictures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from trainflow.client.errors import ClientError

SIDE = 28
PIXELS = SIDE * SIDE
_RAMP = " .:-=+*#%@"
IMAGE_FORMATS = ("PNG", "JPEG")  # decoded as these only, whatever the name: PIL would also run EPS through Ghostscript


def image_layout(shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """(channels, height, width) of an image input shaped [pixels] (square, one channel) or [C, H, W]; else None."""
    if len(shape) == 1 and shape[0] >= 4 and math.isqrt(shape[0]) ** 2 == shape[0]:
        side = math.isqrt(shape[0])
        return (1, side, side)
    if len(shape) == 3 and shape[0] in (1, 3):
        return (shape[0], shape[1], shape[2])
    return None


def to_model_input(examples: np.ndarray, shape: tuple[int, ...] = (PIXELS,), pixels: bool = True) -> np.ndarray:
    """One example or a batch, in any layout of the same size (e.g. [N, 28, 28] for [784]) -> float32 [N, *shape].

    With `pixels`, uint8 values (0-255) are scaled to [0, 1]; other values are sent as they are.
    """
    array = np.asarray(examples)
    size = math.prod(shape)
    count = array.size // size if size else 0
    one = array.size == size and array.ndim <= len(shape) + 1
    if array.ndim == 0 or count == 0 or array.size != count * size or not (one or array.shape[0] == count):
        wanted = ", ".join(str(n) for n in shape)
        raise ClientError(f"examples have shape {list(array.shape)}: the model takes [N, {wanted}]")
    if array.dtype.kind not in "biuf":
        raise ClientError(f"examples hold {array.dtype} values: the model takes numbers")
    batch = array.reshape(count, *shape)
    if pixels and array.dtype == np.uint8:
        return batch.astype(np.float32) / 255.0
    return np.ascontiguousarray(batch, dtype=np.float32)


def load_image_file(path: Path, shape: tuple[int, ...] = (PIXELS,), invert: bool = True) -> np.ndarray:
    """A PNG/JPEG as the model's float32 input in [0, 1], resized to its size (grayscale or RGB as it takes).

    With `invert`, a one-channel picture that is mostly light is inverted (white on black, as MNIST-style data is).
    """
    from PIL import Image, UnidentifiedImageError

    layout = image_layout(shape)
    if layout is None:
        raise ClientError(
            f"cannot send image {path}: the model takes feature vectors of shape {list(shape)}, not images; "
            "send CSV rows or a .npy array"
        )
    channels, height, width = layout
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            picture = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.Resampling.BILINEAR)
    except UnidentifiedImageError:
        raise ClientError(f"cannot read image {path}: it is not PNG or JPEG data; convert it to PNG") from None
    except Image.DecompressionBombError:
        raise ClientError(
            f"cannot read image {path}: it has more than {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels; "
            f"resize it to about {width}x{height} first"
        ) from None
    except OSError as exc:
        raise ClientError(f"cannot read image {path}: {exc}") from None
    values = np.asarray(picture, dtype=np.float32) / 255.0
    if channels == 1:
        values = 1.0 - values if invert and values.mean() > 0.5 else values
        return values.reshape(shape)
    return np.ascontiguousarray(values.transpose(2, 0, 1)).reshape(shape)


def render_digit(image: np.ndarray) -> str:
    """A one-channel square image as text, two pixel rows per line."""
    raw = np.asarray(image)
    pixels = raw.astype(np.float32) / 255.0 if raw.dtype == np.uint8 else raw.astype(np.float32)
    side = math.isqrt(pixels.size)
    pixels = pixels.reshape(side, side)
    if side % 2:
        pixels = np.vstack([pixels, np.zeros((1, side), np.float32)])
    rows = (pixels[0::2] + pixels[1::2]) / 2
    levels = np.clip((rows * (len(_RAMP) - 1)).round().astype(int), 0, len(_RAMP) - 1)
    return "\n".join("".join(_RAMP[v] for v in row).rstrip() for row in levels)
