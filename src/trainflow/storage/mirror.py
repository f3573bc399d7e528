"""Mirror a local directory into a store (the example's `mc mirror` step)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from trainflow.storage.base import ObjectInfo, ProgressCallback, StorageOptions, _no_progress
from trainflow.storage.errors import ObjectNotFound, StorageError
from trainflow.storage.registry import open_store


@dataclass(frozen=True)
class MirrorResult:
    uploaded: list[str]
    unchanged: list[str]
    bytes_uploaded: int
    extra: list[str] = field(default_factory=list)  # objects there that `src` lacks (left from an earlier upload)
    deleted: bool = False  # whether `extra` were deleted


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _same(path: Path, remote: ObjectInfo | None) -> bool:
    """An object is up to date when its size matches and its ETag (single-part MD5) or content does."""
    if remote is None or remote.size != path.stat().st_size:
        return False
    if remote.etag:
        return remote.etag == _md5(path)
    return False


def local_files(src: Path, hidden: bool = False) -> list[tuple[str, Path]]:
    """Regular files under `src` (hidden ones too with `hidden`), as (relative name, path), sorted."""
    if not src.is_dir():
        raise StorageError(f"no directory at {src}: give the local directory to upload")
    return sorted(
        (p.relative_to(src).as_posix(), p)
        for p in src.rglob("*")
        if p.is_file() and (hidden or not _hidden(p.relative_to(src).as_posix()))
    )


def _hidden(name: str) -> bool:
    return any(part.startswith(".") for part in name.split("/"))


def mirror_dir(
    src: Path,
    dst_url: str,
    options: StorageOptions | None = None,
    progress: ProgressCallback = _no_progress,
    hidden: bool = False,
    delete: bool = False,
) -> MirrorResult:
    """Upload every file of `src` that the destination lacks or holds different; creates the bucket.

    Hidden files (a `.DS_Store`) are left out of a dataset upload; an artifact, whose digest covers every
    file, passes `hidden=True`. Objects there that `src` lacks are `extra`; `delete` removes them once every
    file is uploaded (a reader listing the destination meanwhile still sees them: a prefix cannot change at once).
    """
    files = local_files(src, hidden)
    store = open_store(dst_url, options)
    store.ensure_container()
    try:
        remote = {o.name: o for o in store.list()}
    except ObjectNotFound:
        remote = {}
    uploaded, unchanged, sent = [], [], 0
    for name, path in files:
        if _same(path, remote.get(name)):
            unchanged.append(name)
            continue
        store.upload(path, name, progress)
        uploaded.append(name)
        sent += path.stat().st_size
    local = {name for name, _ in files}
    extra = sorted(n for n in remote if n not in local and (hidden or not _hidden(n)))
    if delete:
        for name in extra:
            store.delete(name)
    return MirrorResult(uploaded, unchanged, sent, extra, delete)
