"""The manifest's files, held off the Python heap: a mapping of name -> FileEntry kept in a few flat buffers.

A manifest holds one entry per file; as a dict of `str` -> `FileEntry` that was ~470 bytes a file in the
sync process (the name, its dict slot, the entry object and its packed record) and more in forked decode
workers, whose garbage collection and allocations copy the pages those objects live on. Here a file is
its packed record (64 bytes), its UTF-8 name in one shared `bytearray`, and a few integers in arrays:
~110 bytes and no Python object per file. `FileEntry` objects are made when a caller reads an entry.

Lookups go through the names' hashes, sorted in a numpy array, plus a small dict of the names added since
the index was last sorted (rebuilt every `_RECENT_MAX` additions).

While a dataset is prepared the table can be `spill`ed: its buffers move to a file mapped read-only, pages the
kernel reads in as they are used and can drop, instead of ~120 bytes a file of heap that forked decode workers
share (the tree's peak); the first change after brings them back onto the heap.
"""

from __future__ import annotations

import mmap
import tempfile
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias, cast, overload

from trainflow.datasets.file_entry import RECORD_SIZE, FileEntry

if TYPE_CHECKING:  # numpy is imported where it is used: a sync lists and copies before it needs it
    import numpy as np

_RECENT_MAX = 8192  # names added since the sorted index was built, looked up in a dict until then
_ENCODING = ("utf-8", "surrogatepass")  # a listed name may hold a lone surrogate (see storage.names)
_Bytes: TypeAlias = "bytearray | memoryview"  # a memoryview: spilled, read from the mapped file
_Ints: TypeAlias = "array[int] | memoryview"  # int64; a memoryview cast to "q" when spilled


class FileTable(MutableMapping[str, FileEntry]):
    """The files of a manifest by name, in the order they were added (a replaced entry keeps its place)."""

    def __init__(self, entries: Iterable[tuple[str, FileEntry]] | dict[str, FileEntry] = ()) -> None:
        self._records: _Bytes = bytearray()  # RECORD_SIZE bytes a row: size, mtimes, fetched_at, sha256
        self._names: _Bytes = bytearray()
        self._name_ends: _Ints = array("q")
        self._hashes: _Ints = array("q")  # hash(name) a row, for rebuilding the index
        self._spilled: mmap.mmap | None = None
        self._etags: _Texts | None = None  # made on the first entry with an ETag (local sources have none)
        self._tags: dict[int, str] = {}  # the rare source tags that are not the one size, ETag and mtime give
        self._dead: set[int] = set()  # rows of deleted names
        self._index_hash: _Ints = array("q")  # hashes sorted, for bisect (array: no numpy call per lookup)
        self._index_row: _Ints = array("q")
        self._recent: dict[str, int] = {}
        self._order: np.ndarray | None = None  # live rows sorted by name, made on demand
        for name, entry in entries.items() if isinstance(entries, dict) else entries:
            self[name] = entry

    def __len__(self) -> int:
        return len(self._name_ends) - len(self._dead)

    def __iter__(self) -> Iterator[str]:
        for row in self._live_rows():
            yield self._name(row)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._row(name) is not None

    def __getitem__(self, name: str) -> FileEntry:
        row = self._row(name) if isinstance(name, str) else None
        if row is None:
            raise KeyError(name)
        return self._entry(row)

    def __setitem__(self, name: str, entry: FileEntry) -> None:
        self.put(name, entry)

    def row(self, name: str) -> int | None:
        """The row holding `name`, which names it for as long as the name stays in the table; None if absent."""
        return self._row(name)

    def at(self, row: int) -> FileEntry:
        """The entry of a row `row` or `put` gave."""
        return self._entry(row)

    def put(self, name: str, entry: FileEntry) -> int:
        """`table[name] = entry`, and the row that holds it."""
        if not isinstance(name, str) or not isinstance(entry, FileEntry):
            raise TypeError("a manifest maps file names (text) to FileEntry records")
        record, etag, tag = entry.parts()
        row = self._row(name)
        records, names, name_ends, hashes = self._on_heap()
        if row is None:
            row = len(name_ends)
            names += name.encode(*_ENCODING)
            name_ends.append(len(names))
            hashes.append(hash(name))
            records += record
            self._recent[name] = row
            if self._etags is not None:
                self._etags.append(None)
            if len(self._recent) >= _RECENT_MAX:
                self._build_index()
        else:
            records[row * RECORD_SIZE : (row + 1) * RECORD_SIZE] = record
        self._set_etag(row, etag)
        if tag is None:
            self._tags.pop(row, None)
        else:
            self._tags[row] = tag
        self._order = None
        return row

    def __delitem__(self, name: str) -> None:
        row = self._row(name) if isinstance(name, str) else None
        if row is None:
            raise KeyError(name)
        self._dead.add(row)
        self._recent.pop(name, None)
        self._tags.pop(row, None)
        self._order = None

    def items(self) -> Iterator[tuple[str, FileEntry]]:  # type: ignore[override]
        """(name, entry) in the order added, without a lookup per name."""
        for row in self._live_rows():
            yield self._name(row), self._entry(row)

    def values(self) -> Iterator[FileEntry]:  # type: ignore[override]
        for row in self._live_rows():
            yield self._entry(row)

    def sorted_names(self) -> SortedNames:
        """The names in sorted order, as a sequence read from the table (no list of every name)."""
        return SortedNames(self, self._sorted_rows())

    def sorted_items(self) -> Iterator[tuple[str, FileEntry]]:
        for row in self._sorted_rows():
            yield self._name(int(row)), self._entry(int(row))

    def spill(self, folder: Path) -> None:
        """Move the table's buffers into a file in `folder`, unnamed (nothing is left after a crash), mapped read-only.

        Reads work as before, from pages the kernel maps in when they are read and can drop again; the first change
        brings the buffers back onto the heap. Where the file cannot be written or mapped (a full disk, a file system
        that maps no files) the table stays on the heap: spilling only saves memory.
        """
        if self._spilled is not None or not self._name_ends:
            return
        parts = (self._records, self._name_ends, self._hashes, self._index_hash, self._index_row, self._names)
        try:
            with tempfile.TemporaryFile(dir=folder) as file:
                for part in parts:
                    file.write(part)
                file.flush()
                spilled = mmap.mmap(file.fileno(), file.tell(), access=mmap.ACCESS_READ)
        except OSError:
            return
        self._spilled = spilled
        views, start = [], 0
        whole = memoryview(self._spilled)
        for part in parts:  # every part but the last (names) is a multiple of 8 bytes: the int64 views stay aligned
            views.append(whole[start : start + memoryview(part).nbytes])
            start += len(views[-1])
        self._records, self._names = views[0], views[5]
        self._name_ends, self._hashes, self._index_hash, self._index_row = (v.cast("q") for v in views[1:5])

    def __getstate__(self) -> dict[str, object]:
        """Pickled and deep-copied from heap copies of a spilled table's buffers: a mapping cannot be pickled."""
        return {**self.__dict__, **self._heap_buffers()} if self._spilled is not None else self.__dict__

    def _heap_buffers(self) -> dict[str, object]:
        """Heap copies of the buffers `spill` moves, by attribute, with no mapping."""
        ints = ("_name_ends", "_hashes", "_index_hash", "_index_row")
        return {
            "_records": bytearray(self._records),
            "_names": bytearray(self._names),
            **{key: array("q", bytes(getattr(self, key))) for key in ints},
            "_spilled": None,
        }

    def _on_heap(self) -> tuple[bytearray, bytearray, array[int], array[int]]:
        """The buffers a change grows (records, names, name ends, hashes), brought back onto the heap if spilled."""
        if self._spilled is not None:
            self.__dict__.update(self._heap_buffers())  # the mapping goes once no view of it is left
        return cast(
            "tuple[bytearray, bytearray, array[int], array[int]]",
            (self._records, self._names, self._name_ends, self._hashes),
        )

    def total_size(self) -> int:
        import numpy as np

        sizes = np.frombuffer(bytes(self._records), dtype="<i8").reshape(-1, RECORD_SIZE // 8)[:, 0]
        if self._dead:
            sizes = np.delete(sizes, sorted(self._dead))
        return int(sizes.sum())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FileTable | dict):
            return len(self) == len(other) and all(n in other and other[n] == e for n, e in self.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FileTable({len(self)} files)"

    # -- rows

    def _live_rows(self) -> Iterator[int]:
        dead = self._dead
        return (row for row in range(len(self._name_ends)) if row not in dead)

    def _name(self, row: int) -> str:
        start = self._name_ends[row - 1] if row else 0
        return str(self._names[start : self._name_ends[row]], *_ENCODING)

    def _entry(self, row: int) -> FileEntry:
        etag = self._etags.get(row) if self._etags is not None else None
        return FileEntry.from_parts(
            bytes(self._records[row * RECORD_SIZE : (row + 1) * RECORD_SIZE]), etag, self._tags.get(row)
        )

    def _set_etag(self, row: int, etag: str | None) -> None:
        if etag is not None and self._etags is None:
            self._etags = _Texts(len(self._name_ends))
        if self._etags is not None:
            self._etags.set(row, etag)

    def _row(self, name: str) -> int | None:
        row = self._recent.get(name)
        if row is not None:
            return row
        key = hash(name)
        i = bisect_left(self._index_hash, key)
        while i < len(self._index_hash) and self._index_hash[i] == key:
            row = self._index_row[i]
            if row not in self._dead and self._name(row) == name:
                return row
            i += 1
        return None

    def _build_index(self) -> None:
        import numpy as np

        hashes = np.frombuffer(self._hashes, dtype=np.int64).copy()  # a copy: the array keeps growing
        rows = np.arange(len(hashes), dtype=np.int64)
        if self._dead:
            rows = np.delete(rows, sorted(self._dead))
        rows = rows[np.argsort(hashes[rows], kind="stable")]
        self._index_row = array("q", rows.tobytes())
        self._index_hash = array("q", hashes[rows].tobytes())
        self._recent = {}

    def _sorted_rows(self) -> np.ndarray:
        """The live rows in the order of their names (Python's text order: that of the UTF-8 bytes)."""
        import numpy as np

        if self._order is None:
            rows = np.arange(len(self._name_ends), dtype=np.int64)
            if self._dead:
                rows = np.delete(rows, sorted(self._dead))
            self._order = rows[name_order(self._names, self._name_ends, rows)]
        return self._order


_KEY_BYTES = 32  # names are sorted by this many leading bytes in numpy; the rare ties past them in Python
_TIE_ROWS = 8192  # sorted keys compared at a time


def name_order(data: bytearray | memoryview, ends: array[int] | memoryview, rows: np.ndarray) -> np.ndarray:
    """The positions that put `rows` in the order of their names (UTF-8 bytes in `data`, each ending at `ends[row]`).

    Sorted in numpy by their first bytes, not as a Python object per name: a sort of 100,000 names as `bytes` left
    ~10 MB of freed objects in the heap, pages that forked decode workers then write into and keep.
    """
    import numpy as np

    all_ends = np.array(ends, dtype=np.int64)
    stops, starts = all_ends[rows], np.concatenate(([0], all_ends[:-1]))[rows]
    lengths = stops - starts
    width = max(1, min(_KEY_BYTES, int(lengths.max(initial=0))))
    text = np.frombuffer(data, dtype=np.uint8)
    keys = np.zeros((len(rows), width), dtype=np.uint8)  # zero-padded: a name sorts before its longer extensions
    for k in range(width):
        has = lengths > k
        keys[has, k] = text[starts[has] + k]
    flat = keys.view(f"S{width}").ravel()  # names hold no NUL (storage.names refuses control characters)
    order = np.argsort(flat, kind="stable")
    same = np.zeros(max(len(order) - 1, 0), dtype=bool)  # a name's leading bytes equal those of the one before
    for first in range(0, len(same), _TIE_ROWS):  # in pieces: the sorted keys whole were twice the keys again
        ranked = flat[order[first : first + _TIE_ROWS + 1]]
        same[first : first + len(ranked) - 1] = ranked[1:] == ranked[:-1]
    ties = np.flatnonzero(same)
    long = lengths[order] > width
    i = 0
    while i < len(ties):  # runs of equal leading bytes: sorted again by their whole names where one is longer
        j = i
        while j + 1 < len(ties) and ties[j + 1] == ties[j] + 1:
            j += 1
        first, last = int(ties[i]), int(ties[j]) + 2
        if long[first:last].any():
            run = order[first:last]
            whole = [bytes(data[starts[p] : stops[p]]) for p in run]
            order[first:last] = run[sorted(range(len(run)), key=whole.__getitem__)]
        i = j + 1
    return order


class _RowNames(Sequence[str]):
    """Names of a table's rows (`_rows`: numpy or an array of int64), each read from the table when asked for."""

    _rows: np.ndarray | array[int]

    def __init__(self, table: FileTable) -> None:
        self._table = table

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._table._name(int(row)) for row in self._rows[i]]
        return self._table._name(int(self._rows[i]))

    def __iter__(self) -> Iterator[str]:
        for row in self._rows:
            yield self._table._name(int(row))


class SortedNames(_RowNames):
    """A table's names in sorted order, each read when asked for."""

    def __init__(self, table: FileTable, rows: np.ndarray) -> None:
        super().__init__(table)
        self._rows = rows


class _Texts:
    """Optional text a row (ETags), in one buffer; a replaced value is appended and the old bytes left."""

    def __init__(self, rows: int) -> None:
        self._data = bytearray()
        self._starts = array("q", [-1]) * rows  # -1: None
        self._ends = array("q", [0]) * rows

    def append(self, value: str | None) -> None:
        self._starts.append(-1)
        self._ends.append(0)
        self.set(len(self._starts) - 1, value)

    def set(self, row: int, value: str | None) -> None:
        if value is None:
            self._starts[row] = -1
            return
        self._starts[row] = len(self._data)
        self._data += value.encode(*_ENCODING)
        self._ends[row] = len(self._data)

    def get(self, row: int) -> str | None:
        start = self._starts[row]
        return None if start < 0 else self._data[start : self._ends[row]].decode(*_ENCODING)


class NameList(Sequence[str]):
    """A list of file names in one buffer (what a sync did to each file): ~20 bytes a name instead of ~80."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._data = bytearray()
        self._ends = array("q")
        for name in names:
            self.append(name)

    def append(self, name: str) -> None:
        self._data += name.encode(*_ENCODING)
        self._ends.append(len(self._data))

    def sort(self) -> None:
        import numpy as np

        order = name_order(self._data, self._ends, np.arange(len(self._ends), dtype=np.int64))
        done = NameList()
        for i in order:
            done.append(self[int(i)])
        self._data, self._ends = done._data, done._ends

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # IndexError past the end, negative positions from it
        start = self._ends[i - 1] if i else 0
        return self._data[start : self._ends[i]].decode(*_ENCODING)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, NameList | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self))


class TableNames(_RowNames):
    """Some of a table's names (what a sync did to those files), held as their rows: 8 bytes a name, no copy of it."""

    _rows: array[int]

    def __init__(self, table: FileTable) -> None:
        super().__init__(table)
        self._rows = array("q")

    def append_row(self, row: int) -> None:
        self._rows.append(row)

    def sort(self) -> None:
        """In the order of the names."""
        import numpy as np

        rows = np.array(self._rows, dtype=np.int64)
        self._rows = array("q", rows[name_order(self._table._names, self._table._name_ends, rows)].tobytes())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(list(self))
