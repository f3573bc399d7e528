"""An image input's value range, checked in one pass over the pixels: the same answers as comparing each value."""

from __future__ import annotations

import numpy as np
import pytest

from trainflow.export.signature import TensorSpec
from trainflow.serving.errors import InvalidInput
from trainflow.serving.tensor_specs import check_input


def image_spec(dtype: str = "float32", value_range: tuple[float, float] = (0.0, 1.0)) -> TensorSpec:
    return TensorSpec("images", dtype, (-1, 4), image=True, value_range=value_range)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("value_range", [(0.0, 1.0), (0.0, 255.0), (0.5, 1.0), (-1.0, 1.0)])
def test_pixels_inside_the_range_and_on_its_ends_are_accepted(dtype: str, value_range: tuple[float, float]) -> None:
    low, high = value_range
    pixels = np.array([[low, high, (low + high) / 2, low]], dtype=dtype)
    assert check_input("images", image_spec(dtype, value_range), pixels).dtype == np.dtype(dtype)


def test_a_bound_the_dtype_cannot_hold_is_compared_as_a_number() -> None:
    spec = image_spec(value_range=(0.0, 0.1))  # float32(0.1) is a little above 0.1
    assert check_input("images", spec, np.array([[0.0, 0.05, 0.099, 0.0]], np.float32)).shape == (1, 4)
    with pytest.raises(InvalidInput, match="values in"):
        check_input("images", spec, np.array([[0.0, 0.1, 0.05, 0.0]], np.float32))


def test_negative_zero_is_black_like_zero() -> None:
    assert check_input("images", image_spec(), np.array([[-0.0, 0.0, 0.5, 1.0]], np.float32)).shape == (1, 4)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize(
    ("value", "says"),
    [
        (np.nan, "NaN, infinite"),
        (np.inf, "NaN, infinite"),
        (-np.inf, "NaN, infinite"),
        (-0.25, "values in [-0.25, 1]"),
        (1.5, "values in [0, 1.5]"),
    ],
)
def test_a_pixel_outside_the_range_is_refused_and_named(dtype: str, value: float, says: str) -> None:
    pixels = np.array([[0.0, 1.0, value, 0.5]], dtype=dtype)
    with pytest.raises(InvalidInput, match=says.replace("[", r"\[").replace("]", r"\]")):
        check_input("images", image_spec(dtype), pixels)


def test_a_range_that_starts_above_zero_refuses_a_pixel_below_it() -> None:
    with pytest.raises(InvalidInput, match=r"values in \[0.25, 1\]"):
        check_input("images", image_spec(value_range=(0.5, 1.0)), np.array([[0.25, 1.0, 0.5, 0.75]], np.float32))
