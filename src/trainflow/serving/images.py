"""Encoded images (PNG, JPEG) -> float32 pixels in the model's range (grayscale or RGB), as TF Serving's `{"b64": ...}`.

A few kilobytes of PNG can declare gigapixels, so an image's size is read from its header and checked
against a per-image and a per-request pixel limit before anything is decoded, and only a few images
decode at once: memory is bounded by the limits, not by what clients send.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
import warnings
from dataclasses import dataclass

import numpy as np

from trainflow.serving.errors import InvalidInput, ServingError, TooLarge
from trainflow.serving.tensor_specs import ImageLayout

DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
DEFAULT_MAX_REQUEST_PIXELS = 4 * DEFAULT_MAX_IMAGE_PIXELS
_FORMATS = ("PNG", "JPEG")


@dataclass(frozen=True)
class ImageLimits:
    """Decoded pixels allowed per image and per request (width x height, summed over a request's images)."""

    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS


class ImageDecoder:
    """Decodes b64 images within the limits; at most `concurrent` images are decoded at the same time."""

    def __init__(self, limits: ImageLimits, concurrent: int) -> None:
        from PIL import Image

        self.limits = limits
        self.slots = threading.BoundedSemaphore(max(1, concurrent))
        # Pillow warns past its own, looser limit before we can refuse the image with ours: one line per bomb
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

    def batch(self, name: str, layout: ImageLayout | None) -> ImageBatch:
        """A decoder for the images of one request into `layout` (None: the input takes no images)."""
        return ImageBatch(self, name, layout)


class ImageBatch:
    """The images of one request, decoded one at a time against both pixel limits."""

    def __init__(self, decoder: ImageDecoder, name: str, layout: ImageLayout | None) -> None:
        self.decoder = decoder
        self.name = name
        self.layout = layout
        self.count = 0
        self.spent = 0

    def decode(self, value: object) -> np.ndarray:
        """`{"b64": "<PNG or JPEG>"}` -> float32 [H, W] (grayscale) or [3, H, W] (RGB), resized to the model's size."""
        self.count += 1
        layout = self.layout
        if layout is None:
            raise InvalidInput(
                f"input '{self.name}' takes numbers, not {{\"b64\": ...}} images: send its values as JSON numbers"
            )
        if not isinstance(value, dict) or set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise InvalidInput(f'input \'{self.name}\': expected {{"b64": "<base64 PNG or JPEG>"}}')
        try:
            data = base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"input '{self.name}': image {self.count} is not valid base64") from None
        return self._decode(data, layout)

    def decode_bytes(self, data: bytes) -> np.ndarray:
        """An encoded PNG or JPEG (a tf.Example bytes feature) -> pixels, as `decode`."""
        self.count += 1
        if self.layout is None:
            raise InvalidInput(
                f"input '{self.name}' takes numbers, not encoded images: send a float_list or int64_list feature"
            )
        return self._decode(data, self.layout)

    def _decode(self, data: bytes, layout: ImageLayout) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data), formats=_FORMATS) as image:
                self._admit(*image.size)
                mode, size = ("L" if layout.channels == 1 else "RGB"), (layout.width, layout.height)
                image.draft(mode, size)  # JPEG: decode at the smallest scale that still fits
                with self.decoder.slots:
                    converted = image.convert(mode)
                    if converted.size != size:
                        converted = converted.resize(size, Image.Resampling.BILINEAR)
                    pixels = np.asarray(converted, dtype=np.float32) * ((layout.high - layout.low) / 255.0)
                    pixels += layout.low
                    return pixels if layout.channels == 1 else np.ascontiguousarray(pixels.transpose(2, 0, 1))
        except Image.DecompressionBombError:
            raise self._too_large("per image", self.decoder.limits.max_image_pixels, "--max-image-pixels", "") from None
        except ServingError:
            raise
        except Exception:  # noqa: BLE001 - Pillow raises many types (OSError, SyntaxError, struct.error, ...) for corrupt data
            raise InvalidInput(f"input '{self.name}': image {self.count} is not a valid PNG or JPEG image") from None

    def _admit(self, width: int, height: int) -> None:
        limits = self.decoder.limits
        pixels = width * height
        size = f" is {width}x{height} = {pixels} pixels"
        if pixels > limits.max_image_pixels:
            raise self._too_large("per image", limits.max_image_pixels, "--max-image-pixels", size)
        self.spent += pixels
        if self.spent > limits.max_request_pixels:
            raise self._too_large(
                "per request",
                limits.max_request_pixels,
                "--max-request-pixels",
                f" brings the request to {self.spent} pixels",
            )

    def _too_large(self, scope: str, limit: int, flag: str, size: str) -> TooLarge:
        return TooLarge(
            f"input '{self.name}': image {self.count}{size}, over the server's limit of {limit} "
            f"decoded pixels {scope}: send smaller images (the model uses {self._size()}) "
            f"or raise {flag}"
        )

    def _size(self) -> str:
        return f"{self.layout.width}x{self.layout.height}" if self.layout else "no images"
