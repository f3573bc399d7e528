"""Pick the store for a URL: callers above this layer never look at the scheme."""

from __future__ import annotations

import os

from trainflow.storage.base import StorageOptions, Store
from trainflow.storage.urls import parse_url


def open_store(url: str | os.PathLike[str], options: StorageOptions | None = None) -> Store:
    """The store whose base is `url` (a directory-like prefix)."""
    options = options or StorageOptions.from_env()
    loc = parse_url(url)
    if loc.scheme == "file":
        from trainflow.storage.local import LocalStore

        return LocalStore(os.fspath(url), loc.local_path)
    if loc.scheme == "s3":
        from trainflow.storage.s3 import S3Store

        return S3Store(loc.url, loc.netloc, loc.path, options)
    from trainflow.storage.http import HttpStore

    return HttpStore(loc.url, options)
