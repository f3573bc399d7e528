"""A drawn digit becomes an MNIST-like input: white on black, 20x20 box, centred by mass."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from trainflow.ui import UiError
from trainflow.ui.digits import digit_from_pixels, digit_from_png


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def centre_of_mass(digit: np.ndarray) -> tuple[float, float]:
    pixels = digit.reshape(28, 28)
    ys, xs = np.indices(pixels.shape)
    return float((ys * pixels).sum() / pixels.sum()), float((xs * pixels).sum() / pixels.sum())


def test_a_stroke_in_a_corner_is_scaled_into_20_pixels_and_centred() -> None:
    canvas = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(canvas).line([(30, 20), (30, 120)], fill=255, width=14)  # a small "1" top left
    digit = digit_from_png(png(canvas))
    assert digit.shape == (784,) and digit.dtype == np.float32 and digit.min() >= 0 and digit.max() <= 1
    rows = np.nonzero(digit.reshape(28, 28).max(axis=1) > 0.1)[0]
    assert 19 <= rows.max() - rows.min() + 1 <= 21  # the longer side fills the 20-pixel box
    cy, cx = centre_of_mass(digit)
    assert abs(cy - 13.5) < 1 and abs(cx - 13.5) < 1


def test_dark_ink_on_white_is_inverted_like_mnist() -> None:
    paper = Image.new("RGB", (200, 200), "white")
    ImageDraw.Draw(paper).ellipse([50, 40, 150, 160], outline="black", width=12)  # a "0"
    digit = digit_from_png(png(paper)).reshape(28, 28)
    assert digit[0, 0] == 0 and digit.max() > 0.9
    assert digit[14, 14] < 0.1  # the hole of the zero stays black


def test_a_transparent_canvas_counts_as_black() -> None:
    canvas = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).line([(50, 10), (50, 90)], fill=(255, 255, 255, 255), width=8)
    assert digit_from_png(png(canvas)).reshape(28, 28)[14, 14] > 0.5


def test_an_empty_canvas_and_unreadable_bytes_are_refused() -> None:
    with pytest.raises(UiError, match="draw a digit first"):
        digit_from_png(png(Image.new("L", (280, 280), 0)))
    with pytest.raises(UiError, match="could not be read"):
        digit_from_png(b"\x89PNG not really")
    with pytest.raises(UiError, match="shape"):
        digit_from_pixels(np.zeros((3, 28, 28)))
