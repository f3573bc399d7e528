"""storage: URLs -> bytes for local paths, file://, s3:// and http(s)://, with retries and clear errors."""

# Names load on first use (PEP 562): a step process that only writes its outputs (`atomic_write_bytes`)
# must not pay for importing every store, the mirror and the URL parsing.
from __future__ import annotations

from typing import TYPE_CHECKING

from trainflow.lazy_names import lazy_names

if TYPE_CHECKING:
    from trainflow.storage.atomic import atomic_write_bytes
    from trainflow.storage.base import ObjectInfo, ProgressCallback, StorageOptions, Store
    from trainflow.storage.errors import ObjectExists, ObjectNotFound, SourceUnreachable, StorageError
    from trainflow.storage.mirror import MirrorResult, mirror_dir
    from trainflow.storage.registry import open_store
    from trainflow.storage.urls import canonical_url, is_local, is_shared, join_url, local_path_of, parse_url

_MODULES = {
    "MirrorResult": ".mirror",
    "ObjectExists": ".errors",
    "ObjectInfo": ".base",
    "ObjectNotFound": ".errors",
    "ProgressCallback": ".base",
    "SourceUnreachable": ".errors",
    "StorageError": ".errors",
    "StorageOptions": ".base",
    "Store": ".base",
    "atomic_write_bytes": ".atomic",
    "canonical_url": ".urls",
    "is_local": ".urls",
    "is_shared": ".urls",
    "join_url": ".urls",
    "local_path_of": ".urls",
    "mirror_dir": ".mirror",
    "open_store": ".registry",
    "parse_url": ".urls",
}

__all__ = [
    "MirrorResult",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "ProgressCallback",
    "SourceUnreachable",
    "StorageError",
    "StorageOptions",
    "Store",
    "atomic_write_bytes",
    "canonical_url",
    "is_local",
    "is_shared",
    "join_url",
    "local_path_of",
    "mirror_dir",
    "open_store",
    "parse_url",
]

__getattr__, __dir__ = lazy_names(__name__, _MODULES)
