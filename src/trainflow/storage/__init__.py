"""storage: URLs -> bytes for local paths, file://, s3:// and http(s)://, with retries and clear errors."""

from trainflow.storage.base import ObjectInfo, ProgressCallback, StorageOptions, Store
from trainflow.storage.errors import ObjectExists, ObjectNotFound, SourceUnreachable, StorageError
from trainflow.storage.local import atomic_write_bytes
from trainflow.storage.mirror import MirrorResult, mirror_dir
from trainflow.storage.registry import open_store
from trainflow.storage.urls import canonical_url, is_local, join_url, parse_url

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
    "join_url",
    "mirror_dir",
    "open_store",
    "parse_url",
]
