"""The download-dataset step's work: sync a source into the node's cache and say what the pipeline reads of it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainflow.datasets.cache import DatasetCache, SyncResult, default_name
from trainflow.datasets.formats import FormatOptions
from trainflow.datasets.manifest import load_manifest
from trainflow.datasets.mnist import ALL_FILES
from trainflow.datasets.observer import SyncObserver
from trainflow.storage import open_store


def files_to_fetch(cache: DatasetCache, source: str, files: Sequence[str]) -> tuple[str, ...] | None:
    """The files asked for; else all (None), or the MNIST mirror's four where the store cannot list its files."""
    if files:
        return tuple(files)
    return None if open_store(source, cache.options).listable else ALL_FILES


def download_dataset(
    cache: DatasetCache,
    source: str,
    name: str | None = None,
    files: Sequence[str] = (),
    observer: SyncObserver | None = None,
    options: FormatOptions | None = None,
) -> SyncResult:
    """Sync `source` into the cache as `name` (default: derived from the source) and describe it."""
    name = default_name(source) if name is None else name
    return cache.ensure(source, name, files_to_fetch(cache, source, files), observer, options=options)


def step_outputs(result: SyncResult) -> dict[str, Any]:
    """What the step tells later steps: the cached dataset's name, path, identity, format and cost."""
    return {
        "dataset-name": result.name,
        "dataset-path": str(result.path),
        "dataset-path-digest": content_digest(result.path),
        "bytes-downloaded": result.bytes_downloaded,
        "offline": result.offline,
        "dataset-format": result.descriptor.format if result.descriptor else "",
    }


def content_digest(directory: Path) -> str:
    """The cached dataset's identity: its files' names and checksums from the manifest (not its timestamps)."""
    manifest = load_manifest(directory)
    digest = hashlib.sha256(b"{")  # the JSON of {name: sha256}, sorted, hashed a file at a time
    items = manifest.files.sorted_items() if manifest else iter(())
    for i, (name, entry) in enumerate(items):
        digest.update(f"{', ' if i else ''}{json.dumps(name)}: {json.dumps(entry.sha256)}".encode())
    digest.update(b"}")
    return "manifest-sha256:" + digest.hexdigest()
