"""Artifacts: files or directories a step publishes under the run's artifacts URL, passed on by reference.

A `Call` or function `Train` step that lists an output in `artifacts` may return a local path for it;
the step's process then uploads that file or directory to `<artifacts_url>/<workflow>/<step>/<key>/`
(in an object store, into a folder named by its digest below that: see `_version_url`) and the output
becomes the published URL, with `<key>-digest` beside it. A later step receives the
URL and reads it with `local_path(url)`: the path itself when the store is local, otherwise a copy
downloaded once into `$TRAINFLOW_HOME/cache/artifacts`. On Kubernetes, where steps run in different
pods, this is how a file gets from one step to the next.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainflow.pipelines.digests import PREFIX, HashFile, file_sha256, tree_digest
from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.keys import check_keys
from trainflow.settings import trainflow_home
from trainflow.storage import (
    ObjectNotFound,
    StorageError,
    StorageOptions,
    join_url,
    local_path_of,
    mirror_dir,
    open_store,
)
from trainflow.storage.names import name_problem, shown

ENV = "TRAINFLOW_ARTIFACTS_URL"  # where this step instance publishes: <artifacts_url>/<workflow>/<step>
DIGEST_SUFFIX = "-digest"
DIGEST_PREFIX = PREFIX
_VERSION_CHARS = 32  # of an artifact's sha256: the folder of one version in an object store


def digest(path: Path, hash_file: HashFile = file_sha256) -> str:
    """`sha256:` over the name and whole content of a file, or of every file in a directory (hidden ones too)."""
    return tree_digest(path, hash_file)


def publish(
    outputs: Mapping[str, Any], keys: Sequence[str], base_url: str, options: StorageOptions | None = None
) -> dict[str, Any]:
    """`outputs` with each artifact that names a local file or directory published under `base_url`.

    The output becomes the published URL (a file keeps its name: `<base>/<key>/<name>`; in an object store
    `<base>/<key>/<digest folder>/...`) and `<key>-digest` its digest. Values that are not local paths
    (already a URL) are left as they are.
    """
    check_keys("artifact", keys)
    published = dict(outputs)
    for key in keys:
        value = outputs.get(key)
        if not isinstance(value, str) or not value:
            continue
        try:
            path = local_path_of(value)
        except StorageError:
            path = Path(value)  # refused below as a path that does not exist
        if path is None:  # a URL of a remote store: published already
            continue
        if not path.exists():
            raise PipelineError(f"artifact {key}={value!r} does not exist: return the path of a file or directory")
        if path.is_symlink():
            raise PipelineError(f"artifact {key}={value!r} is a symlink: return the file or directory itself")
        if path.is_dir():
            _refuse_links(key, path)
        found = digest(path)
        target = join_url(base_url, key)
        try:
            target = _version_url(target, found)
            if path.is_dir():
                _replace_dir(path, target, options)
                published[key] = target
            else:
                store = open_store(target, options)
                store.ensure_container()
                store.upload(path, path.name)
                published[key] = store.object_url(path.name)
        except StorageError as exc:
            raise PipelineError(f"cannot publish artifact {key} to {target}: {exc.message}") from None
        published[f"{key}{DIGEST_SUFFIX}"] = found
    return published


def _version_url(target: str, found: str) -> str:
    """Where an artifact goes: `target` itself on a local disk (replaced by a rename), else a folder named by its digest.

    An object store's prefix cannot change at once: with a folder per content, a reader never sees an earlier
    publication's files beside the new ones (a retried step that writes fewer files), a failed upload leaves
    no output pointing at it and the earlier version whole, and a copy cached by its URL stays right.
    """
    if local_path_of(target) is not None:
        return target
    return join_url(target, found.removeprefix(DIGEST_PREFIX)[:_VERSION_CHARS])


def publish_where_told(outputs: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """`outputs` with the artifacts `keys` published under $TRAINFLOW_ARTIFACTS_URL; left local where it is unset."""
    base = os.environ.get(ENV)
    if not keys or not base:
        return dict(outputs)
    return publish(outputs, keys, base)


def _refuse_links(key: str, folder: Path) -> None:
    """A link inside would copy what it points to (outside the folder, perhaps) and its digest would differ."""
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            entry = Path(root, name)
            if entry.is_symlink():
                raise PipelineError(
                    f"artifact {key}: {shown(str(entry.relative_to(folder)))} is a symlink inside {folder}: "
                    "put a copy of what it points to there instead"
                )


def _replace_dir(path: Path, target: str, options: StorageOptions | None) -> None:
    """Publish a directory; into a local store by copying (a retried step replaces its earlier files)."""
    dest = local_path_of(target)
    if dest is None:
        mirror_dir(path, target, options, hidden=True)  # the digest covers hidden files: so does the copy
        return
    if dest.resolve() == path.resolve():
        return
    staging = dest.with_name(f".{dest.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(path, staging, symlinks=False)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(staging, dest)


def local_path(url: str, options: StorageOptions | None = None) -> Path:
    """A local path holding the artifact at `url` (a file or a directory), downloading it once if remote."""
    try:
        here = local_path_of(url)
    except StorageError as exc:
        raise PipelineError(f"artifact reference {url!r}: {exc.message}") from None
    if here is not None:
        if not here.exists():
            raise PipelineError(f"artifact {url} does not exist (deleted, or published on another machine)")
        return here
    cache = trainflow_home() / "cache" / "artifacts" / hashlib.sha256(url.encode()).hexdigest()[:32]
    if not cache.exists():
        _download(url, cache, options or StorageOptions.from_env())
    files = [p for p in cache.iterdir() if p.name != _FILE_MARK]
    return files[0] if (cache / _FILE_MARK).exists() and len(files) == 1 else cache


_FILE_MARK = ".one-file"


def _download(url: str, cache: Path, options: StorageOptions) -> None:
    """Fetch the object or the prefix at `url` into `cache`, through a staging folder of this process's own.

    A failure leaves nothing; when another process (another rank) put its copy in place first, that one stays.
    """
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", dir=cache.parent))
    try:
        _fetch(url, staging, options)
        try:
            os.replace(staging, cache)
        except OSError:
            if not cache.is_dir():
                raise
    except StorageError as exc:
        raise PipelineError(f"cannot fetch artifact {url}: {exc.message}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch(url: str, staging: Path, options: StorageOptions) -> None:
    parent, _, name = url.rstrip("/").rpartition("/")
    try:
        _check_name(name, url)
        open_store(parent, options).download(name, staging / name)
        (staging / _FILE_MARK).touch()
    except ObjectNotFound:
        # Names are checked (escaping keys, 'x' beside 'x/y') before anything is written: a StorageError.
        if not open_store(url, options).download_into(staging):
            raise PipelineError(f"no artifact at {url}: was it deleted?") from None


def _check_name(name: str, url: str) -> None:
    """Object names come from outside: refuse one that would land outside the cache folder."""
    problem = name_problem(name)
    if problem is not None:
        raise PipelineError(f"artifact {url} holds an unsafe name {shown(name)}: {problem}")
