"""JSON values -> numpy arrays: numbers only (no strings, booleans or nulls), rectangular, at most MAX_RANK deep.

numpy alone would turn "0.1" and true into numbers, so each innermost list is checked by the exact types it
holds. Rows are copied one at a time: a big request then never holds the interpreter lock in one long call,
which keeps the event loop (health checks) answering while another thread converts it.

A flat list for a float input whose JSON text surely holds no booleans (`may_hold_booleans`) skips collecting
each value's type: adding them up refuses strings, nulls, objects and lists, which then take the exact check
(and its message).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from trainflow.serving.errors import InvalidInput

MAX_RANK = 6  # images are [N, pixels], [N, side, side] or [N, C, H, W]; a few more for other models
_NUMBERS: set[type] = {int, float}
_INTEGERS: set[type] = {int}
_TYPE_NAMES = {str: "a string", bool: "a boolean (true/false)", type(None): "null", dict: "a JSON object"}
_MAX_E_LOOKS = 32  # a body with more "e"s (numbers with exponents) takes the exact check instead
_BEFORE_BOOLEAN_E = (ord("u"), ord("s"))  # tru|e, fals|e


def may_hold_booleans(document: bytes) -> bool:
    """False only when the JSON text `document` surely holds no `true` or `false`.

    Both end in an "e" after a "u" or an "s", where a number's exponent "e" follows a digit or a dot; the
    "e"s are found by memchr, so a body of plain numbers costs a few microseconds. Many "e"s (or a key such
    as "values") answer True: the caller then checks every value's type.
    """
    find = document.find
    at = find(b"e")
    for _ in range(_MAX_E_LOOKS):
        if at == -1:
            return False
        if at and document[at - 1] in _BEFORE_BOOLEAN_E:
            return True
        at = find(b"e", at + 1)
    return True


def numbers_array(value: object, name: str, dtype: type | np.dtype, booleans: bool = True) -> np.ndarray:
    """`value` (a number or nested lists of numbers) as an array of `dtype`; InvalidInput naming what is wrong.

    An integer `dtype` takes whole JSON numbers only: 1.5 is refused, not truncated. `booleans=False` is the
    caller's word that the JSON `value` came from held no true/false (`may_hold_booleans`).
    """
    if not booleans and type(value) is list and np.dtype(dtype).kind == "f":
        found = _flat_numbers(value, dtype)
        if found is not None:
            return found
    allowed = _INTEGERS if np.dtype(dtype).kind in "iu" else _NUMBERS
    shape = _shape(value, name)
    out: np.ndarray = np.empty(shape, dtype=dtype)
    try:
        if not shape:
            _check_leaf([value], name, None, allowed)
            out[()] = value
        elif 0 in shape:
            list(_rows(value, shape, name, ()))  # still checks that every level is as long as the first
        elif len(shape) == 1:  # one flat list (a V2 tensor's data): checked and converted in one call each
            _check_leaf(value, name, (), allowed)  # type: ignore[arg-type]
            with np.errstate(over="ignore"):
                out = np.array(value, dtype=dtype)
        else:
            flat = out.reshape(-1, shape[-1])
            with np.errstate(over="ignore"):  # a number past the dtype's range becomes inf, refused by the caller
                for i, (index, row) in enumerate(_rows(value, shape, name, ())):
                    _check_leaf(row, name, index, allowed)
                    flat[i] = row
    except OverflowError:
        raise InvalidInput(f"input '{name}' holds a number too large for {np.dtype(dtype).name}") from None
    return out


def _flat_numbers(values: list, dtype: type | np.dtype) -> np.ndarray | None:
    """A flat list of JSON numbers (no booleans among them) as a float array; None for anything else."""
    try:
        # builtin sum adds floats and ints in C and raises on a string, null, object or list: a type check of
        # every value at a fifth of the cost of collecting their types (a boolean would pass: none is there)
        sum(values, 0.0)
    except (TypeError, OverflowError):  # the exact check names the value
        return None
    with np.errstate(over="ignore"):  # a number past the dtype's range becomes inf, refused by the caller
        return np.array(values, dtype=dtype)


def _shape(value: object, name: str) -> tuple[int, ...]:
    shape: list[int] = []
    while isinstance(value, list):
        if len(shape) == MAX_RANK:
            raise InvalidInput(
                f"input '{name}' is nested more than {MAX_RANK} lists deep: see the model's metadata "
                "for the shape it takes"
            )
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _rows(
    value: object, shape: tuple[int, ...], name: str, index: tuple[int, ...]
) -> Iterator[tuple[tuple[int, ...], list]]:
    """The innermost lists in order, after checking that each level is as long as the first one at its depth."""
    if not isinstance(value, list) or len(value) != shape[0]:
        raise InvalidInput(
            f"input '{name}' is not a rectangular array: {_where(index)} is {_describe(value)}, "
            f"where the first one at that depth is a list of {shape[0]}"
        )
    if len(shape) == 1:
        yield index, value
        return
    for i, item in enumerate(value):
        yield from _rows(item, shape[1:], name, (*index, i))


def _check_leaf(row: list, name: str, index: tuple[int, ...] | None, allowed: set[type]) -> None:
    """Every item a JSON number (exact types: a boolean is an int to Python, not to us)."""
    if set(map(type, row)) <= allowed:
        return
    position, bad = next((i, v) for i, v in enumerate(row) if type(v) not in allowed)
    where = "the value" if index is None else _where((*index, position))
    if isinstance(bad, list):
        raise InvalidInput(
            f"input '{name}' is not a rectangular array: {where} is {_describe(bad)}, "
            "where the first one at that depth is a number"
        )
    if type(bad) is float:
        raise InvalidInput(f"input '{name}': {where} is {bad!r}; this input takes whole numbers (integers)")
    example = f' ({bad[:20]!r}: send 0.1, not "0.1")' if isinstance(bad, str) else ""
    raise InvalidInput(f"input '{name}': {where} is {_describe(bad)}{example}; values must be JSON numbers")


def _where(index: tuple[int, ...]) -> str:
    return "value" + "".join(f"[{i}]" for i in index) if index else "the value"


def _describe(value: object) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if type(value) in _NUMBERS:
        return "a number"
    return _TYPE_NAMES.get(type(value), type(value).__name__)
