"""training: cluster spec, launcher, train loop, checkpoints and the built-in models."""

from trainflow.training.checkpoints import Checkpoint, CheckpointStore
from trainflow.training.cluster import ClusterSpec, NonTrainer, cluster_from_env
from trainflow.training.config import TrainConfig
from trainflow.training.errors import TrainingError
from trainflow.training.launcher import TrainResult, preflight, train
from trainflow.training.loop import METRICS_FILE
from trainflow.training.models import BUILTIN_MODELS, DEFAULT_MODEL, ModelSpec, build_model, check_model

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
