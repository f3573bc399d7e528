"""`export_model`: the latest checkpoint of a train dir -> a new verified ONNX version under the export base."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

import numpy as np

from trainflow.export.errors import ExportError
from trainflow.export.onnx_graph import PIXELS, to_onnx, verify
from trainflow.export.signature import image_classifier_signature
from trainflow.export.versions import publish_version
from trainflow.storage import StorageError, StorageOptions, open_store
from trainflow.training import METRICS_FILE, Checkpoint, CheckpointStore, ModelSpec, TrainingError, build_model
from trainflow.training.models import BUILTIN_MODELS

log = logging.getLogger(__name__)

VERIFY_EXAMPLES = 256


@dataclass(frozen=True)
class ExportResult:
    version: int
    url: str
    global_step: int
    max_difference: float


def _accuracy(train_dir: str, options: StorageOptions) -> float | None:
    try:
        accuracy = float(json.loads(open_store(train_dir, options).read_bytes(METRICS_FILE))["accuracy"])
    except (StorageError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return accuracy if math.isfinite(accuracy) else None  # NaN would make signature.json invalid JSON


def _spec(checkpoint: Checkpoint, model: str | None, hidden_units: int | None) -> ModelSpec:
    """The model to rebuild: the checkpoint's, with the overrides; a file never names code to import by itself."""
    stored = checkpoint.model_spec
    if model is None and stored.name not in BUILTIN_MODELS:
        raise ExportError(
            f"checkpoint {checkpoint.name} was trained with --model {stored.name!r}: pass "
            "--model with the same factory to export it (trainflow imports no code a file names)"
        )
    return ModelSpec(model or stored.name, hidden_units or stored.hidden_units)


def _finite_weights(checkpoint: Checkpoint) -> None:
    bad = checkpoint.non_finite()
    if bad is not None:
        raise ExportError(
            f"checkpoint {checkpoint.name} holds NaN or infinite weights ('{bad}'): the training "
            "diverged; train again with a lower --learning-rate (nothing was published)"
        )


def export_model(
    train_dir: str,
    export_base: str,
    model: str | None = None,
    hidden_units: int | None = None,
    options: StorageOptions | None = None,
) -> ExportResult:
    """Export the latest valid checkpoint of `train_dir` as the next version under `export_base`.

    The model is rebuilt from the spec stored in the checkpoint; `model`/`hidden_units` override it.
    """
    options = options or StorageOptions.from_env()
    try:
        checkpoint = CheckpointStore(train_dir, options).require_latest()
        _finite_weights(checkpoint)
        spec = _spec(checkpoint, model, hidden_units)
        net = build_model(spec)
        net.load_state_dict(checkpoint.model_state)
    except TrainingError as exc:
        raise ExportError(str(exc), exit_code=exc.exit_code) from None
    except RuntimeError as exc:  # load_state_dict: the checkpoint does not fit the model asked for
        raise ExportError(
            f"checkpoint {checkpoint.name} does not fit model {spec.name} "
            f"(hidden units {spec.hidden_units}): {str(exc).splitlines()[0]}"
        ) from None
    net.eval()
    onnx_bytes = to_onnx(net)
    blank_and_full = np.stack([np.zeros(PIXELS, np.float32), np.ones(PIXELS, np.float32)])
    probe = np.concatenate([blank_and_full, np.random.default_rng(0).random((VERIFY_EXAMPLES - 2, PIXELS), np.float32)])
    diff = verify(onnx_bytes, net, probe)
    metadata = {
        "train_dir": train_dir,
        "checkpoint": checkpoint.name,
        "global_step": checkpoint.step,
        "model": spec.to_dict(),
        "accuracy": _accuracy(train_dir, options),
    }
    signature = image_classifier_signature(metadata=metadata)
    try:
        version, url = publish_version(export_base, onnx_bytes, signature.to_json(), options)
    except StorageError as exc:
        raise ExportError(f"cannot publish to {export_base}: {exc}", exit_code=exc.exit_code) from None
    log.info(
        "exported step %d of %s as version %d -> %s (ONNX Runtime vs torch: %.1e)",
        checkpoint.step,
        train_dir,
        version,
        url,
        diff,
    )
    return ExportResult(version, url, checkpoint.step, diff)
