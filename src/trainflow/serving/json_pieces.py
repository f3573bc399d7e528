"""Parse a large JSON document in pieces, so that no single call holds the interpreter lock for long.

orjson parses a 20 MB body in one C call of a few hundred milliseconds, during which no other Python
thread runs: the event loop, health checks included, would stall behind any large request. Here numpy
finds the document's structure first (brackets, commas and colons outside strings, with their nesting
depth), then every array or object larger than `piece` bytes is cut at its commas into runs of about
`piece` bytes, and orjson parses each run on its own. The result equals `orjson.loads(body)`; only the
error messages differ (they say where the document breaks).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

PIECE_BYTES = 64 * 1024
MAX_SPLIT_DEPTH = 64  # deeper containers are parsed whole: nothing a request holds nests that deep
MAX_DEPTH = 512  # below orjson's 1024, which also counts the Python frames already on the stack
_OPENERS, _CLOSERS = b"[{", b"]}"
_WHITESPACE = b" \t\r\n"
_NOT_WHITESPACE = re.compile(rb"[^ \t\r\n]")


class JsonError(ValueError):
    """The document is not valid JSON; the message says what is wrong and where."""


def loads(body: bytes, piece: int = PIECE_BYTES) -> Any:
    """`orjson.loads(body)`, in pieces of about `piece` bytes when the body is larger; JsonError if not JSON."""
    if len(body) <= piece:
        return _orjson(body, 0)
    start, end = _strip(body, 0, len(body))
    if start == end:
        raise JsonError("the document is only whitespace")
    return _Structure(body).value(start, end, 0, piece)


class _Structure:
    """The positions of the structural bytes outside strings, the bytes, and the depth each one sits at."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        data = np.frombuffer(body, dtype=np.uint8)
        quotes = _string_quotes(body, data)
        if len(quotes) % 2:
            raise JsonError("a string is not terminated")
        positions = np.flatnonzero(_any_of(data, b"[]{},:"))
        outside = np.searchsorted(quotes, positions) % 2 == 0  # an even number of quotes before it
        self.positions = positions[outside]
        self.chars = data.take(self.positions)
        steps = _any_of(self.chars, _OPENERS).astype(np.int8) - _any_of(self.chars, _CLOSERS)
        after = np.cumsum(steps, dtype=np.int32)
        if len(after) and (after.min() < 0 or after[-1] != 0):
            raise JsonError("the brackets and braces do not balance")
        if len(after) and after.max() > MAX_DEPTH:
            raise JsonError(f"the document nests more than {MAX_DEPTH} arrays and objects deep")
        self.depths = after - (steps > 0)  # an opener sits at the depth outside it, like its closer

    def value(self, start: int, end: int, depth: int, piece: int) -> Any:
        """The JSON value in body[start:end] (stripped of whitespace), a container at nesting `depth` or a scalar."""
        opener = self.body[start]
        if end - start <= piece or opener not in _OPENERS or depth >= MAX_SPLIT_DEPTH:
            return _orjson(self.body[start:end], start)
        is_list = opener == _OPENERS[0]
        if self.body[end - 1] != _CLOSERS[_OPENERS.index(opener)]:
            raise JsonError(f"the {'array' if is_list else 'object'} at byte {start} is not closed where it ends")
        low, high = np.searchsorted(self.positions, [start + 1, end - 1])
        depths, chars, positions = self.depths[low:high], self.chars[low:high], self.positions[low:high]
        if len(depths) and depths.min() <= depth:
            raise JsonError(f"the brackets inside the value at byte {start} do not match")
        commas = positions[(chars == ord(",")) & (depths == depth + 1)]
        if not len(commas) and not self.body[start + 1 : end - 1].strip(_WHITESPACE):
            return [] if is_list else {}
        starts = np.concatenate(([start + 1], commas + 1))
        ends = np.concatenate((commas, [end - 1]))
        result: Any = [] if is_list else {}
        for first, last, alone in _runs(starts, ends, piece):
            if alone:  # one item larger than a piece: cut it up in turn
                item_start, item_end = _strip(self.body, int(starts[first]), int(ends[first]))
                if item_start == item_end:
                    raise JsonError(f"an empty item (two commas in a row?) at byte {item_start}")
                if is_list:
                    result.append(self.value(item_start, item_end, depth + 1, piece))
                else:
                    result.update([self._member(item_start, item_end, depth + 1, piece)])
                continue
            run = self.body[int(starts[first]) : int(ends[last])]
            if not run.strip(_WHITESPACE):  # ",," or a trailing comma, alone in its run
                raise JsonError(f"an empty item (two commas in a row, or a trailing one) at byte {starts[first]}")
            parsed = _orjson(b"[" + run + b"]" if is_list else b"{" + run + b"}", int(starts[first]))
            if is_list:
                result.extend(parsed)
            else:
                result.update(parsed)
        return result

    def _member(self, start: int, end: int, depth: int, piece: int) -> tuple[str, Any]:
        low, high = np.searchsorted(self.positions, [start, end])
        inside = slice(low, high)
        colons = self.positions[inside][(self.chars[inside] == ord(":")) & (self.depths[inside] == depth)]
        if len(colons) != 1:
            raise JsonError(f'the object member at byte {start} is not "key": value')
        key = _orjson(self.body[start : int(colons[0])], start)
        value_start, value_end = _strip(self.body, int(colons[0]) + 1, end)
        if not isinstance(key, str) or value_start == value_end:
            raise JsonError(f'the object member at byte {start} is not "key": value')
        return key, self.value(value_start, value_end, depth, piece)


def _runs(starts: np.ndarray, ends: np.ndarray, piece: int) -> Iterator[tuple[int, int, bool]]:
    """Consecutive items as (first, last, alone): items starting within one `piece` window go together,
    and an item longer than a piece goes alone."""
    big = (ends - starts) > piece
    window = (starts - starts[0]) // piece
    breaks = np.flatnonzero((window[1:] != window[:-1]) | big[1:] | big[:-1]) + 1
    bounds = [0, *breaks.tolist(), len(starts)]
    for first, stop in itertools.pairwise(bounds):
        yield first, stop - 1, bool(big[first])


def _string_quotes(body: bytes, data: np.ndarray) -> np.ndarray:
    """Positions of the quotes that open or close strings, leaving out escaped ones (an odd run of \\ before)."""
    quotes = np.flatnonzero(data == ord('"'))
    after_backslash = quotes[(quotes > 0) & (data[np.maximum(quotes - 1, 0)] == ord("\\"))]
    escaped = []
    for position in after_backslash.tolist():  # rare outside text-heavy bodies, and each run is short
        run = 0
        while position - run > 0 and body[position - run - 1] == ord("\\"):
            run += 1
        if run % 2:
            escaped.append(position)
    return np.setdiff1d(quotes, np.array(escaped, dtype=quotes.dtype), assume_unique=True) if escaped else quotes


def _any_of(data: np.ndarray, chars: bytes) -> np.ndarray:
    """Where `data` holds any of `chars` (a few vectorised comparisons: much faster than np.isin or a table)."""
    mask = data == chars[0]
    for char in chars[1:]:
        mask |= data == char
    return mask


def _strip(body: bytes, start: int, end: int) -> tuple[int, int]:
    """body[start:end] without surrounding JSON whitespace, as (start, end); no copy of the body."""
    found = _NOT_WHITESPACE.search(body, start, end)
    if found is None:
        return start, start
    start = found.start()
    while end > start and body[end - 1] in _WHITESPACE:  # usually a newline or two
        end -= 1
    return start, end


def _orjson(piece: bytes, offset: int) -> Any:
    where = f" (in the part from byte {offset})" if offset else ""
    try:
        return orjson.loads(piece)
    except orjson.JSONDecodeError as exc:
        raise JsonError(f"{exc}{where}") from None
    except RecursionError:  # orjson's depth limit is shared with the caller's stack
        raise JsonError(f"arrays and objects nest too deeply{where}") from None
