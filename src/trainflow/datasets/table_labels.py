"""A table's labels as small integer codes while it streams by, turned into class indices once all rows are read."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

from trainflow.datasets.checks import MAX_CLASSES
from trainflow.datasets.errors import DataFormatError
from trainflow.datasets.table_reader import nulls_of, values_of


class LabelCodes:
    """Each distinct label text gets a code (in order of first sight, batch by batch); rows hold codes, not text."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._codes: dict[str, int] = {}

    def encode(self, values: pa.Array, text: Callable[[object], str]) -> np.ndarray:
        """The codes of one batch of a label column (`text` gives a value's label, '' for a missing one)."""
        if pa.types.is_dictionary(values.type):  # a CSV's label column, encoded as it was parsed
            encoded = values
        elif pa.types.is_integer(values.type) and not values.null_count and len(values):
            return self._integers(values_of(values), text)
        else:
            import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]  # ~0.06 s of CPU: not for a CSV

            encoded = pc.dictionary_encode(values)
        local = [self._code(text(v)) for v in encoded.dictionary.to_pylist()]
        indices = values_of(encoded.indices)  # int32
        if encoded.indices.null_count:
            indices = np.where(nulls_of(encoded.indices), len(local), indices)
            local.append(self._code(text(None)))
        return np.asarray(local, dtype=np.int32)[indices]

    def _integers(self, values: np.ndarray, text: Callable[[object], str]) -> np.ndarray:
        """The codes of a batch of integers, found with numpy: `pyarrow.compute` takes ~0.06-0.1 s of CPU to import,
        before the first batch (labels are usually a few small integers, counted off a table of their range)."""
        low, high = int(values.min()), int(values.max())
        if high - low >= 1 << 16:
            found, at = np.unique(values, return_inverse=True)
            return np.asarray([self._code(text(int(v))) for v in found], dtype=np.int32)[at]
        wide = np.uint64 if values.dtype.kind == "u" else np.int64  # int8's -128..127 is 255 apart: past int8
        offsets = values.astype(wide) - wide(low)
        seen = np.zeros(high - low + 1, dtype=bool)
        seen[offsets] = True
        codes = np.zeros(len(seen), dtype=np.int32)
        found = np.flatnonzero(seen)
        codes[found] = [self._code(text(low + int(v))) for v in found]
        return codes[offsets]

    def first(self, codes: np.ndarray, text: str) -> int | None:
        """The first row labelled `text`, None if none is."""
        code = self._codes.get(text)
        if code is None:
            return None
        hits = np.flatnonzero(codes == code)
        return int(hits[0]) if len(hits) else None

    def merged(self, other: LabelCodes, codes: np.ndarray) -> np.ndarray:
        """`other`'s codes as this one's, texts new to this one coded in `other`'s order of first sight.

        Merging the codes of a table's consecutive parts in order codes every text as reading it whole does.
        """
        remap = np.asarray([self._code(text) for text in other.texts] or [0], dtype=np.int32)
        return remap[codes]

    def code(self, text: str) -> int:
        """The code of a label text seen before."""
        return self._codes[text]

    def _code(self, text: str) -> int:
        code = self._codes.get(text)
        if code is None:
            code = self._codes[text] = len(self.texts)
            self.texts.append(text)
        return code


def labels_of(
    codes: LabelCodes, raw: dict[str, np.ndarray], tables: dict[str, str], where: Callable[[str, int], str]
) -> tuple[dict[str, np.ndarray], tuple[str, ...] | None]:
    """Integer labels are class indices; any other label is a class name (classes sorted, from the training rows).

    DataFormatError, naming the first row that holds it, for an integer label out of range or past the training
    labels, or a test label no training row holds: `where(split, i)` says where row `i` of a split is in its table
    ("line 12", "row index 10")."""
    try:
        values = [int(t) for t in codes.texts]
    except ValueError:
        values = None
    if values is not None:
        # Each clipped to one past either end: int64 whatever the text held, and out of range where it was.
        ints = np.array([min(max(v, -1), MAX_CLASSES) for v in values] or [0], dtype=np.int64)
        y = {s: ints[c] for s, c in raw.items()}
        for split in ("train", "test"):
            row = _first((y[split] < 0) | (y[split] >= MAX_CLASSES))
            if row is not None:
                value = codes.texts[raw[split][row]][:40]
                raise DataFormatError(
                    f"label {value} at {where(split, row)} of {tables[split]} is out of range: labels are class "
                    f"indices 0 to {MAX_CLASSES - 1}; fix the labels"
                )
        top = int(y["train"].max()) if len(y["train"]) else None
        row = None if top is None else _first(y["test"] > top)
        if row is not None:
            value = codes.texts[raw["test"][row]][:40]
            raise DataFormatError(
                f"label {value} at {where('test', row)} of {tables['test']} is out of range: the training labels "
                f"({tables['train']}) only go up to {top}; fix the label or add training examples of that class"
            )
        return y, None
    seen = np.zeros(len(codes.texts), dtype=bool)
    seen[raw["train"]] = True
    classes = tuple(sorted(t for t, s in zip(codes.texts, seen, strict=True) if s))
    index = np.full(len(codes.texts), -1, dtype=np.int64)
    index[[codes.code(name) for name in classes]] = np.arange(len(classes))
    y = {s: index[c] for s, c in raw.items()}
    unknown = np.flatnonzero(y["test"] < 0)
    if len(unknown):
        value = codes.texts[raw["test"][unknown[0]]]
        raise DataFormatError(
            f"label {value[:40]!r} at {where('test', int(unknown[0]))} of {tables['test']} is not a class of "
            f"{tables['train']} ({', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''}): fix the label"
        )
    return y, classes


def _first(flags: np.ndarray) -> int | None:
    """The index of the first True, None if none is."""
    hits = np.flatnonzero(flags)
    return int(hits[0]) if len(hits) else None
