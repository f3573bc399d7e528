"""training: cluster spec, launcher, train loop, checkpoints and the built-in models.

Most of it needs torch; checkpoint names (`trainflow.training.checkpoint_names`) do not. The names
below load on first use, so a step that only reads checkpoint names pays for no torch import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainflow.lazy_names import lazy_names

if TYPE_CHECKING:
    from trainflow.progress import METRICS_FILE
    from trainflow.training.checkpoints import Checkpoint, CheckpointStore
    from trainflow.training.cluster import ClusterSpec, NonTrainer, cluster_from_env
    from trainflow.training.config import TrainConfig
    from trainflow.training.errors import TrainingError
    from trainflow.training.launcher import TrainResult, preflight, train
    from trainflow.training.model_spec import DEFAULT_MODEL, ModelSpec
    from trainflow.training.models import BUILTIN_MODELS, build_model, check_model

_LAZY = {
    "BUILTIN_MODELS": "trainflow.training.models",
    "DEFAULT_MODEL": "trainflow.training.model_spec",
    "METRICS_FILE": "trainflow.progress",
    "Checkpoint": "trainflow.training.checkpoints",
    "CheckpointStore": "trainflow.training.checkpoints",
    "ClusterSpec": "trainflow.training.cluster",
    "ModelSpec": "trainflow.training.model_spec",
    "NonTrainer": "trainflow.training.cluster",
    "TrainConfig": "trainflow.training.config",
    "TrainResult": "trainflow.training.launcher",
    "TrainingError": "trainflow.training.errors",
    "build_model": "trainflow.training.models",
    "check_model": "trainflow.training.models",
    "cluster_from_env": "trainflow.training.cluster",
    "preflight": "trainflow.training.launcher",
    "train": "trainflow.training.launcher",
}

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "METRICS_FILE",
    "Checkpoint",
    "CheckpointStore",
    "ClusterSpec",
    "ModelSpec",
    "NonTrainer",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "build_model",
    "check_model",
    "cluster_from_env",
    "preflight",
    "train",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
