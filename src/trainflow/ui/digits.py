"""A digit drawn on a canvas -> the 28x28 input MNIST models expect.

MNIST digits are white on black, scaled to fit a 20x20 box (aspect kept) and placed in a 28x28
image so that their centre of mass is the centre. A hand-drawn digit is only recognised once it
looks like that, whatever its size or position on the canvas.
"""

from __future__ import annotations

import io

import numpy as np

from trainflow.ui.errors import UiError

SIDE = 28
BOX = 20
INK_THRESHOLD = 0.1  # pixels fainter than this are background (antialiasing, canvas noise)
MAX_PIXELS = 2048 * 2048  # a canvas is far smaller; a PNG this size can decode from a few KB
IMAGE_FORMATS = ("PNG", "JPEG")  # never any other PIL format from uploaded bytes (EPS would run Ghostscript)


def digit_from_png(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes of a drawn digit -> float32 [784] in 0..1, preprocessed like MNIST."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            width, height = image.size  # from the header: nothing is decoded yet
            if width * height > MAX_PIXELS:
                raise UiError(
                    f"the image is {width}x{height} pixels, more than {MAX_PIXELS}: "
                    "send the canvas (a few hundred pixels a side)"
                )
            image.load()
            gray = _flatten_alpha(image).convert("L")
    except UiError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, DecompressionBombError, ...) on bad files
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UiError(f"the image could not be read ({reason}): send a PNG of the drawn digit") from None
    return digit_from_pixels(np.asarray(gray, dtype=np.float32) / 255.0)


def _flatten_alpha(image):
    """Transparent canvas pixels count as background: composite onto black."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba)
    return image


def digit_from_pixels(pixels: np.ndarray) -> np.ndarray:
    """A grayscale image (any size, 0..1) of one digit -> float32 [784], white on black, centred by mass."""
    if pixels.ndim != 2 or min(pixels.shape) < 1:
        raise UiError(f"the image has shape {list(pixels.shape)}: send one grayscale picture of a digit")
    if float(np.median(pixels)) > 0.5:
        pixels = 1.0 - pixels  # dark ink on a light background: MNIST is the other way round
    rows, cols = np.nonzero(pixels > INK_THRESHOLD)
    if rows.size == 0:
        raise UiError("the canvas is empty: draw a digit first")
    crop = pixels[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    boxed = _fit_box(crop)
    return _centre_by_mass(boxed).reshape(SIDE * SIDE)


def _fit_box(crop: np.ndarray) -> np.ndarray:
    """Scale so the longer side is 20 pixels, keeping the aspect ratio (a "1" stays thin)."""
    from PIL import Image

    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray((np.clip(crop, 0, 1) * 255).astype(np.uint8))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS), dtype=np.float32) / 255.0


def _centre_by_mass(boxed: np.ndarray) -> np.ndarray:
    """Place `boxed` in a 28x28 black image with its centre of mass at the centre (clipped to fit)."""
    height, width = boxed.shape
    mass = boxed.sum()
    ys, xs = np.indices(boxed.shape)
    cy, cx = (
        (float((ys * boxed).sum() / mass), float((xs * boxed).sum() / mass)) if mass > 0 else (height / 2, width / 2)
    )
    top = int(np.clip(round((SIDE - 1) / 2 - cy), 0, SIDE - height))
    left = int(np.clip(round((SIDE - 1) / 2 - cx), 0, SIDE - width))
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    out[top : top + height, left : left + width] = np.clip(boxed, 0, 1)
    return out
