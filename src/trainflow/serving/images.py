"""Encoded images (PNG, JPEG) -> grayscale float32 pixels in [0, 1], as TF Serving REST's `{"b64": ...}`."""

from __future__ import annotations

import base64
import binascii
import io
import math

import numpy as np

from trainflow.serving.errors import InvalidInput


def decode_b64_image(value: object, name: str, pixels: int) -> np.ndarray:
    """`{"b64": "<PNG or JPEG>"}` -> float32 [side, side], resized to the model's image size."""
    if not isinstance(value, dict) or set(value) != {"b64"} or not isinstance(value["b64"], str):
        raise InvalidInput(f"input '{name}': expected {{\"b64\": \"<base64 PNG or JPEG>\"}}")
    try:
        data = base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"input '{name}': the b64 value is not valid base64") from None
    from PIL import Image, UnidentifiedImageError

    side = math.isqrt(pixels)
    try:
        with Image.open(io.BytesIO(data)) as image:
            gray = image.convert("L")
            if gray.size != (side, side):
                gray = gray.resize((side, side), Image.Resampling.BILINEAR)
            return np.asarray(gray, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError):
        raise InvalidInput(f"input '{name}': the b64 value is not a PNG or JPEG image") from None
