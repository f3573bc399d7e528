"""Request tensors checked against a signature's input specs: dtype, shape and, for images, value range.

Any signature input is a `TensorSpec` (numpy dtype name, shape with -1 for free dimensions). An image
input (marked `image` in signature.json; float [-1, side*side] or [-1, C, H, W] with C 1 or 3) also takes the shapes
clients send ([N, H, W], [N, 1, H, W], [N, pixels]) and b64 images, with values in its range ([0, 1] by default).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from trainflow.export.signature import TensorSpec
from trainflow.serving.errors import InvalidInput, ModelLoadError

MAX_EXAMPLE_VALUES = 1 << 24  # per input: a signature.json declaring more would make the load-time probe exhaust memory
NUMERIC_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8")


@dataclass(frozen=True)
class ImageLayout:
    """What an image input holds per example: channels, height and width."""

    channels: int
    height: int
    width: int
    low: float = 0.0  # black
    high: float = 1.0  # white

    @property
    def pixels(self) -> int:
        return self.channels * self.height * self.width


@functools.cache  # per signature input; every request's check asks for it
def image_layout(spec: TensorSpec) -> ImageLayout | None:
    """The image an input takes, or None when it is not an image input."""
    if not spec.image or spec.dtype not in ("float16", "float32", "float64") or not spec.shape or spec.shape[0] != -1:
        return None
    rest = spec.shape[1:]
    if len(rest) == 1 and rest[0] >= 4 and math.isqrt(rest[0]) ** 2 == rest[0]:
        side = math.isqrt(rest[0])
        return ImageLayout(1, side, side, *spec.value_range)
    if len(rest) == 3 and rest[0] in (1, 3) and min(rest[1:]) > 0:
        return ImageLayout(*rest, *spec.value_range)
    return None


def numpy_dtype(spec: TensorSpec) -> np.dtype:
    """The numpy dtype of a numeric spec; ModelLoadError for anything else (strings are outputs only)."""
    if spec.dtype not in NUMERIC_DTYPES:
        raise ModelLoadError(
            f"tensor '{spec.onnx_name}' has dtype {spec.dtype!r} in signature.json: inputs take "
            f"{', '.join(NUMERIC_DTYPES)}"
        )
    return np.dtype(spec.dtype)


def dims(spec: TensorSpec) -> str:
    """The shape as users read it: N for the batch, ? for other free dimensions."""
    shown = ["N" if i == 0 and d == -1 else "?" if d == -1 else str(d) for i, d in enumerate(spec.shape)]
    return f"[{', '.join(shown)}]"


def expected(spec: TensorSpec) -> str:
    """How a user is told what an input must look like."""
    layout = image_layout(spec)
    if layout is None:
        return f"{spec.dtype} {dims(spec)}"
    c, h, w = layout.channels, layout.height, layout.width
    shapes = (
        [f"[N, {h}, {w}]", f"[N, {c}, {h}, {w}]", f"[N, {layout.pixels}]"]
        if c == 1
        else [f"[N, {c}, {h}, {w}]", f"[N, {layout.pixels}]"]
    )
    return f"{spec.dtype} {', '.join(shapes[:-1])} or {shapes[-1]} with values in [{layout.low:g}, {layout.high:g}]"


class InputCheck:
    """`check_input` for one signature input, with what it needs looked up once: every request asks for it."""

    __slots__ = ("alias", "bounds", "layout", "spec")

    def __init__(self, alias: str, spec: TensorSpec) -> None:
        self.alias = alias
        self.spec = spec
        self.layout = image_layout(spec)
        self.bounds = (
            None if self.layout is None else _bit_bounds(np.dtype(spec.dtype), self.layout.low, self.layout.high)
        )

    def __call__(self, value: np.ndarray) -> np.ndarray:
        """`value` as the C-contiguous array the graph takes for the input; InvalidInput naming what is wrong."""
        if self.layout is not None:
            return _image(self.alias, self.spec, self.layout, value, self.bounds)
        return _tensor(self.alias, self.spec, value)


def check_input(alias: str, spec: TensorSpec, value: np.ndarray) -> np.ndarray:
    """`value` as the C-contiguous array the graph takes for `spec`; InvalidInput naming what is wrong."""
    return InputCheck(alias, spec)(value)


def _tensor(alias: str, spec: TensorSpec, value: np.ndarray) -> np.ndarray:
    dtype = numpy_dtype(spec)
    if not _same_kind(value.dtype, dtype):
        raise InvalidInput(f"input '{alias}' holds {value.dtype} values: expected {expected(spec)}")
    shape = tuple(value.shape)
    fits = len(shape) == len(spec.shape) and all(d == -1 or d == s for d, s in zip(spec.shape, shape, strict=True))
    if not fits or (shape and shape[0] == 0):
        raise InvalidInput(f"input '{alias}' has shape {list(shape)}: expected {expected(spec)}")
    if dtype.kind in "iu" and value.size and value.dtype != dtype:
        info = np.iinfo(dtype)
        if int(value.min()) < info.min or int(value.max()) > info.max:
            raise InvalidInput(f"input '{alias}' holds values outside {dtype.name}'s range: expected {expected(spec)}")
    result = np.ascontiguousarray(value, dtype=dtype)
    if dtype.kind == "f" and not np.isfinite(result).all():
        raise InvalidInput(f"input '{alias}' contains NaN, infinite or out-of-range numbers: expected {expected(spec)}")
    return result


def _same_kind(given: np.dtype, wanted: np.dtype) -> bool:
    return given.kind == wanted.kind or (given.kind in "iu" and wanted.kind in "iu")


def _image(
    alias: str, spec: TensorSpec, layout: ImageLayout, value: np.ndarray, bounds: tuple[np.dtype, int, int] | None
) -> np.ndarray:
    shape = tuple(value.shape)
    if value.dtype.kind not in "fiu":
        raise InvalidInput(f"input '{alias}' holds {value.dtype} values: expected {expected(spec)}")
    c, h, w = layout.channels, layout.height, layout.width
    valid = (
        (len(shape) == 2 and shape[1] == layout.pixels)
        or (len(shape) == 4 and shape[1:] == (c, h, w))
        or (c == 1 and len(shape) == 3 and shape[1:] == (h, w))
    )
    if not valid or shape[0] == 0:
        raise InvalidInput(f"input '{alias}' has shape {list(shape)}: expected {expected(spec)}")
    images = np.ascontiguousarray(value.reshape(shape[0], *spec.shape[1:]), dtype=spec.dtype)
    if bounds is not None and within_bounds(images, bounds):
        return images
    low, high = float(images.min()), float(images.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InvalidInput(f"input '{alias}' contains NaN, infinite or out-of-range numbers: expected {expected(spec)}")
    if low < layout.low or high > layout.high:
        raise InvalidInput(f"input '{alias}' has values in [{low:g}, {high:g}]: expected {expected(spec)}")
    return images


def within_bounds(images: np.ndarray, bounds: tuple[np.dtype, int, int]) -> bool:
    """True when every value is in the layout's range (`_bit_bounds`), in one pass over the pixels; False means
    "look closer" (the caller's exact check names the problem, or accepts a -0.0)."""
    unsigned, low, high = bounds
    bits = images.view(unsigned)
    if low and int(bits.min()) < low:
        return False
    return int(bits.max()) <= high


@functools.cache
def _bit_bounds(dtype: np.dtype, low: float, high: float) -> tuple[np.dtype, int, int] | None:
    """For a range of non-negative floats that `dtype` holds exactly: its unsigned twin and the bit patterns of
    `low` and `high`. Non-negative floats order like their bits; a negative value (sign bit set), infinity or
    NaN has bits above those of any finite `high`."""
    exact = np.array([low, high], dtype=dtype)
    if not (0.0 <= low <= high and math.isfinite(high)) or exact.tolist() != [low, high]:
        return None
    unsigned = np.dtype(f"u{dtype.itemsize}")
    bit_low, bit_high = exact.view(unsigned).tolist()
    return unsigned, bit_low, bit_high


def probe_value(spec: TensorSpec, rows: int) -> np.ndarray:
    """A batch of ordinary values for a load-time probe: blank, grey, full and fixed noise for floats; zeros else."""
    dtype = numpy_dtype(spec)
    example = tuple(1 if d == -1 else d for d in spec.shape[1:])
    if dtype.kind != "f":
        return np.zeros((rows, *example), dtype)
    batch = np.empty((rows, *example), dtype)  # filled row by row: no second copy of the batch
    noise = np.random.default_rng(0)
    for row in range(rows):
        fill = row % 4
        batch[row] = noise.random(example, np.float32) if fill == 3 else fill / 2
    return batch
