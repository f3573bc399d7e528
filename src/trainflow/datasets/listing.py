"""A dataset's source listed for a sync: page by page, each name checked as it comes, the whole checked at the end."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from trainflow.datasets.errors import DatasetError
from trainflow.datasets.layout import DESCRIPTOR_NAME, MANIFEST_NAME, object_problem
from trainflow.storage import ObjectInfo, Store
from trainflow.storage.names import ClashScreen, clash_problem, is_hidden, name_problem, shown

log = logging.getLogger(__name__)


class Listing:
    """The objects that make up a dataset, read from its store page by page; `check` once they are all read.

    Hidden objects (a '.' at the start of a path segment) are left out, as `data upload` and local
    sources leave them out. A name that cannot be a file in the dataset is a DatasetError as it comes.
    """

    def __init__(self, store: Store, files: Sequence[str] | None, name: str) -> None:
        self.store, self.files, self.name = store, files, name
        self.count = 0
        self.suffixes: set[str] = set()  # of the names: which readers preparing them will need
        self._screen = ClashScreen()

    def __iter__(self) -> Iterator[ObjectInfo]:
        for obj in self._objects():
            self._screen.add(obj.name)
            self.count += 1
            self.suffixes.add(obj.name[obj.name.rfind(".") :].lower())
            yield obj

    def check(self) -> None:
        """DatasetError when the source held no files, or two names that cannot share a directory."""
        if not self.count:
            raise DatasetError(f"no files at {self.store.url}: check the URL (is the data uploaded?)")
        suspect, self._screen = self._screen.suspect(), ClashScreen()  # its 8 bytes a name are not kept to the end
        if suspect:  # the names' hashes say two may clash: listed again, and checked whole
            clash = clash_problem(o.name for o in self._objects())
            if clash:
                raise refused(self.store, clash[0], self.name, clash[1])

    def _objects(self) -> Iterator[ObjectInfo]:
        for page in self.store.pages(self.files):
            for obj in page:
                problem = name_problem(obj.name)
                if problem is None and is_hidden(obj.name):
                    log.info("leaving out hidden object %s", self.store.object_url(obj.name))
                    continue
                if problem is None and obj.name in (MANIFEST_NAME, DESCRIPTOR_NAME):  # object_problem's other checks
                    problem = object_problem(obj.name)
                if problem:
                    raise refused(self.store, obj.name, self.name, problem)
                yield obj


def refused(store: Store, key: str, name: str, problem: str) -> DatasetError:
    return DatasetError(
        f"refusing to sync {shown(store.object_url(key))} into dataset '{name}': the object's name {problem}, "
        "so it cannot be a file inside the dataset directory; rename or delete it at the source, "
        "or sync a prefix without it (nothing was downloaded)"
    )
