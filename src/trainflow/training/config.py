"""What one training run is asked to do: plain data, shared by the launcher and every worker."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

from trainflow.datasets import DatasetDescriptor
from trainflow.training.choices import LR_SCHEDULES, OPTIMIZERS, PRECISIONS
from trainflow.training.errors import TrainingError
from trainflow.training.model_spec import DEFAULT_HIDDEN_UNITS, DEFAULT_MODEL, ModelSpec, chosen_model


@dataclass(frozen=True)
class TrainConfig:
    """The options of `trainflow train`; defaults are the example's (200 steps, batch 100, lr 0.01)."""

    data_dir: str
    train_dir: str
    train_steps: int = 200
    batch_size: int = 100  # per worker, as in mnist_replica
    learning_rate: float = 0.01
    model: str = DEFAULT_MODEL
    hidden_units: int = DEFAULT_HIDDEN_UNITS
    checkpoint_every: int = 100
    log_every: int = 20
    max_restarts: int = 3
    peer_timeout: float = 300.0  # seconds a worker waits on a silent peer before its pod ends as transient
    aws_endpoint_url: str | None = None
    aws_region: str | None = None
    seed: int = 0
    optimizer: str = "adam"
    lr_schedule: str = "constant"
    eval_every: int = 0  # steps between evaluations on the test split; 0: only at the end
    precision: str = "auto"  # bf16: mixed precision (fp32 weights); auto: bf16 where the CPU computes it natively

    def model_spec(self, dataset: DatasetDescriptor) -> ModelSpec:
        """The model to build for `dataset`: its input shape and class count; `auto` resolved from the shape."""
        name = chosen_model(self.model, dataset.input_shape)
        return ModelSpec(name, self.hidden_units, dataset.input_shape, dataset.num_classes)

    def learning_rate_at(self, step: int) -> float:
        """The rate for the update of global step `step` (0-based): constant, or cosine-annealed to 0."""
        if self.lr_schedule == "cosine":
            return self.learning_rate * 0.5 * (1 + math.cos(math.pi * step / self.train_steps))
        return self.learning_rate

    def validate(self) -> None:
        """Raise TrainingError (permanent) for options no run could succeed with."""
        for name in ("train_steps", "batch_size", "hidden_units", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise TrainingError(
                f"--learning-rate must be a finite number greater than 0 (e.g. 0.01), got {self.learning_rate}"
            )
        if not (math.isfinite(self.peer_timeout) and self.peer_timeout > 0):
            raise TrainingError(
                f"--peer-timeout must be a finite number of seconds greater than 0 (e.g. 300), got {self.peer_timeout}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise TrainingError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise TrainingError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            raise TrainingError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.eval_every < 0:
            raise TrainingError(f"--eval-every must be 0 (only at the end) or more, got {self.eval_every}")
        if self.max_restarts < 0:
            raise TrainingError(f"--max-restarts must be 0 or more, got {self.max_restarts}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        raw = json.loads(text)
        return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
