"""Numbered model versions under an export base: `<base>/<n>/model.onnx` + `signature.json`.

A version is published whole: on a local disk it is written to `<base>/.tmp-*` and renamed to
`<base>/<n>`; on an object store `model.onnx` is uploaded first and `signature.json` last, so a
version without a signature is incomplete and servers skip it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from trainflow.export.errors import ExportError
from trainflow.export.signature import MODEL_FILE, SIGNATURE_FILE
from trainflow.storage import ObjectNotFound, StorageError, StorageOptions, is_local, join_url, open_store, parse_url

log = logging.getLogger(__name__)

_RENAME_ATTEMPTS = 20


def existing_versions(export_base: str, options: StorageOptions | None = None) -> list[int]:
    """Version numbers present under `export_base`, complete or not (even a stray file named 7), ascending."""
    if is_local(export_base):
        root = parse_url(export_base).local_path
        names = [p.name for p in root.iterdir()] if root.is_dir() else []
    else:
        try:
            names = [info.name.split("/", 1)[0] for info in open_store(export_base, options).list()]
        except ObjectNotFound:
            names = []
    return sorted({int(n) for n in names if n.isdigit()})


def next_version(export_base: str, options: StorageOptions | None = None) -> int:
    """One more than the highest version there, counting incomplete ones (never reuse a number)."""
    versions = existing_versions(export_base, options)
    return versions[-1] + 1 if versions else 1


def _publish_local(root: Path, files: dict[str, bytes]) -> int:
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    except OSError as exc:
        raise ExportError(
            f"cannot create a version under {root}: {exc.strerror or exc}: give --export-base a directory you can write"
        ) from None
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; servers may run as another user
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        for _ in range(_RENAME_ATTEMPTS):
            version = next_version(str(root))
            try:
                os.rename(tmp, root / str(version))  # fails if another exporter took the number
                return version
            except OSError:
                if not (root / str(version)).exists():
                    raise
        raise ExportError(f"could not claim a version number under {root}: too many concurrent exports")
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(
            f"cannot write a version under {root}: {exc.strerror or exc} (nothing was published)"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish_remote(export_base: str, files: dict[str, bytes], options: StorageOptions | None) -> int:
    version = next_version(export_base, options)
    store = open_store(join_url(export_base, str(version)), options)
    store.ensure_container()
    written: list[str] = []
    try:
        for name in sorted(files, key=lambda n: n == SIGNATURE_FILE):  # the signature last
            written.append(name)
            store.write_bytes(name, files[name])
    except BaseException:
        for name in written:  # a version without its signature is never served; leave no parts behind either
            try:
                store.delete(name)
            except StorageError as exc:  # servers skip a version without signature.json anyway
                log.warning("could not remove the partial %s: %s", store.object_url(name), exc)
        raise
    return version


def publish_version(
    export_base: str, model_onnx: bytes, signature_json: str, options: StorageOptions | None = None
) -> tuple[int, str]:
    """Write a new complete version; returns (version, its URL)."""
    files = {MODEL_FILE: model_onnx, SIGNATURE_FILE: signature_json.encode()}
    if is_local(export_base):
        version = _publish_local(parse_url(export_base).local_path, files)
    else:
        version = _publish_remote(export_base, files, options)
    return version, join_url(export_base, str(version))
