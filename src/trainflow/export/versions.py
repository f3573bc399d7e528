"""Numbered model versions under an export base: `<base>/<n>/model.onnx` + `signature.json`.

A version is published whole (the store's `publish`): on a local disk it is staged beside the versions
and renamed to `<base>/<n>`; on an object store `model.onnx` is uploaded first and `signature.json`
last, so a version without a signature is incomplete and servers skip it.
"""

from __future__ import annotations

from trainflow.export.errors import ExportError
from trainflow.export.signature import MODEL_FILE, SIGNATURE_FILE
from trainflow.storage import ObjectExists, StorageError, StorageOptions, Store, join_url, open_store

_CLAIM_ATTEMPTS = 20


def existing_versions(export_base: str, options: StorageOptions | None = None) -> list[int]:
    """Version numbers present under `export_base`, complete or not (even a stray file named 7), ascending."""
    return _versions(open_store(export_base, options))


def _versions(store: Store) -> list[int]:
    return sorted({int(n) for n in store.children() if n.isascii() and n.isdigit()})


def next_version(export_base: str, options: StorageOptions | None = None) -> int:
    """One more than the highest version there, counting incomplete ones (never reuse a number)."""
    versions = existing_versions(export_base, options)
    return versions[-1] + 1 if versions else 1


def publish_version(
    export_base: str, model_onnx: bytes, signature_json: str, options: StorageOptions | None = None
) -> tuple[int, str]:
    """Write a new complete version; returns (version, its URL)."""
    files = {MODEL_FILE: model_onnx, SIGNATURE_FILE: signature_json.encode()}
    store = open_store(export_base, options)
    try:
        for _ in range(_CLAIM_ATTEMPTS):
            versions = _versions(store)
            version = versions[-1] + 1 if versions else 1
            try:
                store.publish(str(version), files, marker=SIGNATURE_FILE)
            except ObjectExists:  # another exporter took the number
                continue
            return version, join_url(export_base, str(version))
    except StorageError as exc:
        raise ExportError(f"cannot create a version: {exc}", exit_code=exc.exit_code) from None
    raise ExportError(f"could not claim a version number under {export_base}: too many concurrent exports")
