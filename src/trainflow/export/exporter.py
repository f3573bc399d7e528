"""`export_model`: the latest checkpoint of a train dir -> a new verified ONNX version under the export base."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import torch

from trainflow.datasets import DatasetDescriptor
from trainflow.export.errors import ExportError
from trainflow.export.onnx_graph import ServingModule, to_onnx, verify
from trainflow.export.reuse import ExportResult, sha256
from trainflow.export.signature import ModelSignature, image_classifier_signature
from trainflow.export.versions import publish_version
from trainflow.storage import StorageError, StorageOptions, open_store
from trainflow.training import METRICS_FILE, Checkpoint, CheckpointStore, ModelSpec, TrainingError, build_model
from trainflow.training.choices import AUTO_MODEL
from trainflow.training.models import BUILTIN_MODELS

log = logging.getLogger(__name__)

VERIFY_EXAMPLES = 256
# large inputs get fewer probe examples: 256 RGB 256x256 images took 4.3 GB and 20 s to verify
PROBE_BYTES = 32 << 20
MIN_PROBE_EXAMPLES = 4  # blank, full and two random ones


def _accuracy(train_dir: str, options: StorageOptions) -> float | None:
    try:
        accuracy = float(json.loads(open_store(train_dir, options).read_bytes(METRICS_FILE))["accuracy"])
    except (StorageError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return accuracy if math.isfinite(accuracy) else None  # NaN would make signature.json invalid JSON


def _spec(checkpoint: Checkpoint, model: str | None, hidden_units: int | None) -> ModelSpec:
    """The model to rebuild: the checkpoint's, with the overrides; a file never names code to import by itself."""
    stored = checkpoint.model_spec
    model = None if model == AUTO_MODEL else model  # auto: what training chose, which the checkpoint names
    if model is None and stored.name not in BUILTIN_MODELS:
        raise ExportError(
            f"checkpoint {checkpoint.name} was trained with --model {stored.name!r}: pass "
            "--model with the same factory to export it (trainflow imports no code a file names)"
        )
    return ModelSpec(model or stored.name, hidden_units or stored.hidden_units, stored.input_shape, stored.num_classes)


def _dataset(checkpoint: Checkpoint) -> DatasetDescriptor | None:
    """The descriptor of the data the checkpoint was trained on; None for one written before descriptors (MNIST)."""
    if checkpoint.dataset is None:
        return None
    try:
        descriptor = DatasetDescriptor.from_dict(checkpoint.dataset)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ExportError(
            f"checkpoint {checkpoint.name} holds a damaged dataset description ({exc}): train again"
        ) from None
    spec = checkpoint.model_spec
    if descriptor.input_shape != spec.input_shape or descriptor.num_classes != spec.num_classes:
        raise ExportError(
            f"checkpoint {checkpoint.name} describes {descriptor.num_classes} classes of {list(descriptor.input_shape)} "
            f"examples but its model takes {list(spec.input_shape)} -> {spec.num_classes}: train again"
        )
    return descriptor


def serving_module(net: torch.nn.Module, spec: ModelSpec, dataset: DatasetDescriptor | None) -> ServingModule:
    """The graph to export: the model behind the dataset's standardisation (none when it is the identity)."""
    norm = dataset.normalization if dataset is not None else None
    if norm is None or (all(m == 0 for m in norm.mean) and all(d == 1 for d in norm.std)):
        return ServingModule(net, spec.input_shape)
    return ServingModule(net, spec.input_shape, norm.mean, norm.std)


def _probe(module: ServingModule, dataset: DatasetDescriptor | None) -> np.ndarray:
    """Examples to compare ONNX Runtime with torch on: blank, full and random ones in the input's usual range."""
    shape = module.graph_input_shape
    count = min(VERIFY_EXAMPLES, max(MIN_PROBE_EXAMPLES, PROBE_BYTES // (4 * math.prod(shape))))
    rng = np.random.default_rng(0)
    if dataset is not None and dataset.kind == "table":
        mean, std = np.asarray(dataset.normalization.mean), np.asarray(dataset.normalization.std)
        rows = mean + std * rng.standard_normal((count, *shape))
        return rows.astype(np.float32)
    low, high = _value_range(dataset)
    blank_and_full = np.stack([np.full(shape, low, np.float32), np.full(shape, high, np.float32)])
    noise = low + (high - low) * rng.random((count - 2, *shape), np.float32)
    return np.concatenate([blank_and_full, noise]).astype(np.float32)


def _value_range(dataset: DatasetDescriptor | None) -> tuple[float, float]:
    """Black and white of the graph's image input: [0, 1] for 8-bit and float pixels, else the dtype's range scaled."""
    if dataset is None or np.dtype(dataset.dtype).kind == "f" or np.dtype(dataset.dtype) == np.uint8:
        return (0.0, 1.0)
    top = float(np.iinfo(np.dtype(dataset.dtype)).max) * dataset.normalization.scale
    return (0.0, top)


def _signature(
    module: ServingModule, spec: ModelSpec, dataset: DatasetDescriptor | None, metadata: dict
) -> ModelSignature:
    if dataset is None:
        return image_classifier_signature(metadata=metadata)
    metadata = {**metadata, "dataset": {"format": dataset.format, "kind": dataset.kind, "dtype": dataset.dtype}}
    return image_classifier_signature(
        spec.num_classes,
        metadata=metadata,
        class_names=dataset.class_names,
        input_shape=module.graph_input_shape,
        image=dataset.kind == "image",
        value_range=_value_range(dataset),
    )


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
        dataset = _dataset(checkpoint)
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
    module = serving_module(net, spec, dataset).eval()
    onnx_bytes = to_onnx(module)
    diff = verify(onnx_bytes, module, _probe(module, dataset))
    metadata = {
        "train_dir": train_dir,
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": checkpoint.sha256,
        "global_step": checkpoint.step,
        "model_sha256": sha256(onnx_bytes),
        "max_difference": diff,
        "model": spec.to_dict(),
        "accuracy": _accuracy(train_dir, options),
    }
    signature = _signature(module, spec, dataset, metadata)
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
