"""Images for the model: files and arrays -> float32 [N, 784] in [0, 1], and digits as text pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainflow.client.errors import ClientError

SIDE = 28
PIXELS = SIDE * SIDE
_RAMP = " .:-=+*#%@"


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (0-255) or float (0-1) images [N, 28, 28], [N, 784] or one [28, 28] -> float32 [N, 784]."""
    array = np.asarray(images)
    if array.shape in ((SIDE, SIDE), (PIXELS,)):
        array = array[None]
    if array.ndim < 2 or array.size != len(array) * PIXELS:
        raise ClientError(f"images have shape {list(array.shape)}: expected [N, 28, 28] or [N, 784]")
    if array.dtype == np.uint8:
        return array.reshape(len(array), PIXELS).astype(np.float32) / 255.0
    return np.ascontiguousarray(array.reshape(len(array), PIXELS), dtype=np.float32)


def load_image_file(path: Path) -> np.ndarray:
    """A PNG/JPEG as a white-on-black 28x28 float32 digit (dark-on-light pictures are inverted, as MNIST is)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            gray = image.convert("L").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError) as exc:
        raise ClientError(f"cannot read image {path}: {exc}") from None
    pixels = np.asarray(gray, dtype=np.float32) / 255.0
    return 1.0 - pixels if pixels.mean() > 0.5 else pixels


def render_digit(image: np.ndarray) -> str:
    """A 28x28 image as 14 lines of 28 characters (two pixel rows per line)."""
    pixels = to_model_input(image).reshape(SIDE, SIDE)
    rows = (pixels[0::2] + pixels[1::2]) / 2
    levels = np.clip((rows * (len(_RAMP) - 1)).round().astype(int), 0, len(_RAMP) - 1)
    return "\n".join("".join(_RAMP[v] for v in row).rstrip() for row in levels)
