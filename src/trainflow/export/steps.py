"""The work of the export-model and train-model steps: export the newest checkpoint once, reuse it after.

`train-model` exports in the process that trained (torch is loaded already); `export-model` then
finds that version intact and reuses it, or exports again and reports it as its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainflow.export.errors import ExportError
from trainflow.storage import StorageOptions

if TYPE_CHECKING:
    from trainflow.export.reuse import ExportResult
    from trainflow.training import TrainResult


@dataclass(frozen=True)
class ExportAfterTraining:
    """What exporting right after training gave: a version and its time, or why it did not (export-model will)."""

    result: ExportResult | None = None
    seconds: float = 0.0
    failure: str = ""


@dataclass(frozen=True)
class TrainStep:
    """The train-model step's result: the training, its export, and the outputs (None where this node does not report)."""

    training: TrainResult
    export: ExportAfterTraining | None
    outputs: dict[str, Any] | None


def train_and_export(workers: int, export_base: str | None, **options: Any) -> TrainStep:
    """Train (`options` are TrainConfig's); the node that hosted rank 0 exports once and reports the outputs."""
    from trainflow.training import TrainConfig, train  # torch loads only here

    result = train(TrainConfig(**options), workers=workers)
    if not result.trained or result.cluster.node_rank != 0:  # type: ignore[union-attr]
        return TrainStep(result, None, None)  # on a cluster the other nodes share its outputs directory
    export = None
    if export_base and result.ran_rank_0:  # one export per run: from the node whose rank 0 saved the checkpoint
        storage = StorageOptions.from_env(options.get("aws_endpoint_url"), options.get("aws_region"))
        export = export_after_training(options["train_dir"], export_base, options, storage)
    metrics = result.metrics or {}
    outputs = {
        "trained": result.trained,
        "accuracy": metrics.get("accuracy"),
        "global-step": metrics.get("global_step"),
        "metrics-url": result.metrics_url,
        "train-dir": options["train_dir"],
    }
    return TrainStep(result, export, outputs)


def export_after_training(
    train_dir: str, export_base: str, options: dict[str, Any], storage: StorageOptions
) -> ExportAfterTraining:
    """Export the newest checkpoint now; a failure fails nothing (export-model exports again)."""
    from trainflow.export.exporter import export_model

    start = time.perf_counter()
    try:
        result = export_model(train_dir, export_base, options["model"], options["hidden_units"], storage)
    except ExportError as exc:
        return ExportAfterTraining(failure=str(exc))
    return ExportAfterTraining(result, time.perf_counter() - start)


def export_latest(
    train_dir: str, export_base: str, model: str | None, hidden_units: int | None, storage: StorageOptions
) -> tuple[ExportResult, bool]:
    """The newest checkpoint as a model version, and whether it is the one train-model exported (reused)."""
    from trainflow.export.reuse import reusable_version

    result = reusable_version(train_dir, export_base, model, hidden_units, storage)
    if result is not None:
        return result, True
    from trainflow.export.exporter import export_model  # imports torch: only when there is something to export

    return export_model(train_dir, export_base, model, hidden_units, storage), False


def export_outputs(result: ExportResult, export_base: str) -> dict[str, Any]:
    """What export-model tells later steps."""
    return {
        "model-version": result.version,
        "model-url": result.url,
        "global-step": result.global_step,
        "export-base": export_base,
    }
