"""The manifest's journal: the entries a sync fetched, appended a line each, so it never rewrites the whole manifest.

A sync writes `manifest.json` at its end (and again once the files it hashes later are hashed) and removes the
journal; until then each fetched file's entry is a JSON line of `.manifest.journal` (hidden: no object can take its
name), written when its batch is done. Reading the manifest replays the journal over it, so a killed sync resumes
with every file it recorded; a line that is not a whole, valid entry (the last one, cut by a crash) is left out, and
its file is fetched again. A struck line takes a file's entry out: its file was replaced by one whose sha256 is taken
later (`later_hashes`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from trainflow.datasets.layout import cached_path, write_failure

if TYPE_CHECKING:
    from trainflow.datasets.manifest import FileEntry

log = logging.getLogger(__name__)
JOURNAL_NAME = ".manifest.journal"
STRUCK = "struck"  # the one field of a line that takes a file's entry out
_VERSION = 1
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


class Journal:
    """An open journal of the locked dataset `directory`, started empty for `source`.

    Entries are kept until `flush`, which writes them in one write of whole lines: a sync flushes after
    each batch it fetched (a write per file cost ~40 us on a busy disk, a tenth of what a sync spends on a file), so a
    killed sync loses only the files it was fetching.
    """

    def __init__(self, directory: Path, name: str, source: str) -> None:
        self.directory = directory
        self.path = cached_path(directory, JOURNAL_NAME)  # refuses a planted link
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _NO_FOLLOW, 0o600)
        except OSError as exc:
            raise write_failure(directory, JOURNAL_NAME, exc) from None
        self._lines = [orjson.dumps({"journal": _VERSION, "name": name, "source": source}) + b"\n"]
        self.flush()

    def add(self, name: str, entry: FileEntry) -> None:
        self._lines.append(orjson.dumps({"name": name, **entry.fields()}) + b"\n")

    def strike(self, name: str) -> None:
        """`name`'s entry is no longer true (its file was replaced, its new entry yet to come): replayed as none."""
        self._lines.append(orjson.dumps({"name": name, STRUCK: True}) + b"\n")

    def flush(self) -> None:
        data, self._lines = b"".join(self._lines), []
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError as exc:
            raise write_failure(self.directory, JOURNAL_NAME, exc) from None

    def close(self, remove: bool) -> None:
        """Flush and close; `remove` once `manifest.json` holds every entry."""
        try:
            self.flush()
        finally:
            os.close(self._fd)
        if remove:
            self.path.unlink(missing_ok=True)


def read_journal(directory: Path) -> tuple[dict[str, Any], Iterator[tuple[str, dict[str, Any]]]] | None:
    """The journal's header (name, source) and its entries as (file name, fields); None when there is none.

    Lines that are not whole JSON objects with a text `name` are left out, with a warning; the caller
    checks the fields themselves.
    """
    path = cached_path(directory, JOURNAL_NAME)
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed by the entries' generator
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("ignoring unreadable manifest journal %s (%s)", path, exc.strerror or exc)
        return None
    header = _line(file.readline())
    if header is None or header.get("journal") != _VERSION or not isinstance(header.get("source"), str):
        file.close()
        log.warning("ignoring manifest journal %s: its first line is not a journal header", path)
        return None
    return header, _entries(file, path)


def _entries(file: Any, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with file:
        for number, raw in enumerate(file, 2):
            fields = _line(raw)
            name = fields.pop("name", None) if fields is not None else None
            if fields is None or not isinstance(name, str):
                log.warning(
                    "left out line %d of manifest journal %s (not a whole entry); its file is fetched again",
                    number,
                    path,
                )
                continue
            yield name, fields


def _line(raw: bytes) -> dict[str, Any] | None:
    if not raw.endswith(b"\n"):
        return None  # cut short by a killed sync
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
