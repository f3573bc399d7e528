"""Reuse a version already exported from a train dir's newest checkpoint, without importing torch.

The `train-model` step exports right after training, in the process that already imported torch;
`export-model` then finds that version here and publishes nothing new. A version is reused only
when it is the newest under the export base, was exported from this train dir, and both digests
it records still hold: the newest checkpoint's bytes and its own model.onnx. Anything else (no
version, another checkpoint, a damaged file, another model asked for) is None: export anew.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Any

from trainflow.export.signature import SIGNATURE_FILE, ModelSignature, SignatureError
from trainflow.export.versions import existing_versions
from trainflow.storage import StorageError, StorageOptions, join_url, open_store
from trainflow.training.checkpoint_names import CHECKPOINT_DIR, checkpoint_name, checkpoint_steps
from trainflow.training.choices import AUTO_MODEL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    version: int
    url: str
    global_step: int
    max_difference: float
    reused: bool = False


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _newest_checkpoint(train_dir: str, options: StorageOptions | None) -> tuple[int, str, str] | None:
    """(step, URL, sha256) of the newest checkpoint of `train_dir`; None when there is none."""
    store = open_store(join_url(train_dir, CHECKPOINT_DIR), options)
    steps = checkpoint_steps(store)
    if not steps:
        return None
    name = checkpoint_name(steps[0])
    return steps[0], store.object_url(name), sha256(store.read_bytes(name))


def _fits(metadata: dict[str, Any], model: str | None, hidden_units: int | None) -> bool:
    """The model the version was exported as is the one asked for (None, auto: whatever the checkpoint holds)."""
    spec = metadata.get("model")
    if not isinstance(spec, dict):
        return False
    return (model in (None, AUTO_MODEL) or spec.get("name") == model) and (
        hidden_units is None or spec.get("hidden_units") == hidden_units
    )


def reusable_version(
    train_dir: str,
    export_base: str,
    model: str | None = None,
    hidden_units: int | None = None,
    options: StorageOptions | None = None,
) -> ExportResult | None:
    """The newest version under `export_base` when it is the intact export of `train_dir`'s newest checkpoint."""
    try:
        versions = existing_versions(export_base, options)
        newest = _newest_checkpoint(train_dir, options) if versions else None
        if newest is None:
            return None
        store = open_store(join_url(export_base, str(versions[-1])), options)
        signature = ModelSignature.from_json(store.read_bytes(SIGNATURE_FILE))
        meta = signature.metadata
        step, checkpoint_url, checkpoint_sha256 = newest
        same_checkpoint = (
            meta.get("train_dir") == train_dir
            and meta.get("checkpoint") == checkpoint_url
            and meta.get("global_step") == step
            and meta.get("checkpoint_sha256") == checkpoint_sha256
        )
        if not (same_checkpoint and _fits(meta, model, hidden_units)):
            return None
        if meta.get("model_sha256") != sha256(store.read_bytes(signature.model_file)):
            log.warning(
                "version %d under %s: model.onnx does not match its digest; exporting anew", versions[-1], export_base
            )
            return None
        difference = meta.get("max_difference")
    except (StorageError, SignatureError, OSError):  # OSError: e.g. a file named like the next version
        return None  # unreadable: the exporter reads the same objects and says what is wrong
    if not isinstance(difference, float) or not math.isfinite(difference):
        return None
    return ExportResult(versions[-1], join_url(export_base, str(versions[-1])), step, difference, reused=True)
