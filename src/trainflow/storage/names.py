"""Object names as relative paths: which names can be mapped under a local directory, and why others cannot.

An object name comes from outside (an S3 listing, a manifest on disk, a command line), so it is
checked as hostile before it becomes a path: one plain relative path, '/'-separated, whose every
segment is an ordinary file name, and which stays so under the Unicode normalisations other tools
apply.
"""

from __future__ import annotations

import unicodedata
from array import array
from collections.abc import Iterable

MAX_NAME_BYTES = 1024  # S3's limit for a whole key
MAX_SEGMENT_BYTES = 255  # NAME_MAX of Linux and macOS file systems
# Control, format (bidi overrides, zero-width), surrogate and line/paragraph separator characters:
# none belongs in a file name, and several make a name print as something it is not.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a relative path inside a directory, or None when it can."""
    if not isinstance(name, str):
        return "is not text"
    if not name:
        return "is empty"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes long (at most {MAX_NAME_BYTES})"
    problem = _structure_problem(name)
    if problem is None and unicodedata.normalize("NFKC", name) != name:
        problem = _structure_problem(unicodedata.normalize("NFKC", name))
        if problem is not None:
            problem += " once Unicode-normalised (NFKC)"
    return problem


def _structure_problem(name: str) -> str | None:
    for char in name:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return f"contains the control or invisible character U+{ord(char):04X}"
    if "\\" in name:
        return "contains a backslash (a path separator on Windows)"
    if name.startswith("/"):
        return "is an absolute path"
    for segment in name.split("/"):
        if segment == "":
            return "has an empty path segment ('//' or a trailing '/')"
        if segment in (".", ".."):
            return f"has a '{segment}' path segment"
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            return f"has a path segment longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def is_hidden(name: str) -> bool:
    """True when a segment of `name` starts with '.': such files are never part of a dataset."""
    return any(segment.startswith(".") for segment in name.split("/"))


def clash_problem(names: Iterable[str]) -> tuple[str, str] | None:
    """(name, why) for the first name that cannot share a directory with the others, or None.

    Two names clash when one would be a file and a folder at once (`x` and `x/y`), or when they
    differ only in Unicode normalisation (they are one file on macOS).
    """
    files: dict[str, str] = {}
    for name in sorted(names):
        key = unicodedata.normalize("NFC", name)
        if key in files:
            if files[key] == name:
                return name, "is listed twice"
            return name, f"is the same file as {files[key]!r} once Unicode-normalised"
        files[key] = name
    folders: dict[str, str] = {}  # each folder's path -> the first name under it
    for key, name in files.items():
        segments = key.split("/")
        for i in range(1, len(segments)):
            folders.setdefault("/".join(segments[:i]), name)
    for key, name in files.items():
        if key in folders:
            return name, f"is a file, and also a folder of other objects (such as {shown(folders[key])})"
    return None


_SCREENED_IN_SETS = 4096  # names; more are screened in numpy (8 bytes a name, where a set takes ~60)


class ClashScreen:
    """Names screened for clashes as they come, at 8 bytes a name and a folder: `clash_problem` holds them all.

    Each name's hash (once NFC-normalised) and those of its folders are kept; `suspect` says whether two names
    share a hash or a file's is a folder's, as a clash (or, rarely, two different names' hashes) would make them.
    A suspect listing is checked exactly with `clash_problem`.
    """

    def __init__(self) -> None:
        self._files = array("q")
        self._folders = array("q")
        self._folder = ""  # the last name's folder: names come a folder at a time

    def add(self, name: str) -> None:
        key = name if name.isascii() else unicodedata.normalize("NFC", name)
        self._files.append(hash(key))
        folder = key.rpartition("/")[0]
        if folder == self._folder:
            return
        self._folder = folder
        while folder:
            self._folders.append(hash(folder))
            folder = folder.rpartition("/")[0]

    def suspect(self) -> bool:
        if len(self._files) <= _SCREENED_IN_SETS:  # a set is cheaper than importing numpy (~0.07 s) before the copies
            distinct = set(self._files)
            return len(distinct) < len(self._files) or not distinct.isdisjoint(self._folders)
        import numpy as np  # here: storage is imported by commands that never list a dataset

        files = np.sort(np.array(self._files, dtype=np.int64))
        if (files[1:] == files[:-1]).any():
            return True
        return bool(np.isin(files, np.array(self._folders, dtype=np.int64)).any())


def shown(name: str, limit: int = 300) -> str:
    """`name` quoted for a one-line message: escapes made visible, the middle of a very long name cut."""
    if len(name) <= limit:
        return repr(name)
    half = limit // 2
    return f"{name[:half]!r}...{name[-half:]!r} ({len(name)} characters)"
