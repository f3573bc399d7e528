"""Checkpoints in `<train dir>/checkpoints/`: one whole object per step, latest valid one wins.

Names sort by step (`ckpt-000000600.pt`). Each is written in one atomic write (temp + rename on
local disks, a single PUT on S3), so a reader sees a whole checkpoint or none; a corrupt one (a
disk that lied, a hand edit) is skipped with a warning and the previous one is used.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from typing import Any

import torch

from trainflow.storage import ObjectNotFound, StorageError, StorageOptions, Store, join_url, open_store
from trainflow.training.checkpoint_names import CHECKPOINT_DIR, checkpoint_name, checkpoint_steps
from trainflow.training.errors import TrainingError
from trainflow.training.model_spec import ModelSpec

log = logging.getLogger(__name__)

FORMAT = "trainflow-checkpoint/v1"


@dataclass
class Checkpoint:
    """Everything needed to continue training or to export: weights, optimizer state, step, model spec.

    `dataset` is the descriptor (as a dict) of the data it was trained on: the exporter's class names,
    input shape and normalization; None for checkpoints of MNIST written before descriptors existed.
    """

    step: int
    model_spec: ModelSpec
    model_state: dict[str, Any]
    optimizer_state: dict[str, Any] | None = None
    name: str = ""
    dataset: dict[str, Any] | None = None
    sha256: str = ""  # of the bytes it was read from: names exactly this checkpoint (an export records it)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(
            {
                "format": FORMAT,
                "step": self.step,
                "model_spec": self.model_spec.to_dict(),
                "model_state": self.model_state,
                "optimizer_state": self.optimizer_state,
                "dataset": self.dataset,
            },
            buffer,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "") -> Checkpoint:
        """Parse a checkpoint; ValueError if it is not a whole one."""
        try:
            raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for truncated or foreign bytes
            raise ValueError(
                f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        try:
            checkpoint = cls(
                int(raw["step"]),
                ModelSpec.from_dict(raw["model_spec"]),
                dict(raw["model_state"]),
                raw.get("optimizer_state"),
                name,
                raw.get("dataset"),
                hashlib.sha256(data).hexdigest(),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"missing or malformed field {exc}") from None
        if checkpoint.step < 0:
            raise ValueError(f"negative step {checkpoint.step}")
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint.model_state.items()):
            raise ValueError("model_state is not a mapping of names to tensors")
        if checkpoint.optimizer_state is not None and not isinstance(checkpoint.optimizer_state, dict):
            raise ValueError("optimizer_state is not a mapping")
        if checkpoint.dataset is not None and not isinstance(checkpoint.dataset, dict):
            raise ValueError("dataset is not a mapping")
        return checkpoint

    def non_finite(self) -> str | None:
        """The name of the first weight holding NaN or infinity, or None when all are finite."""
        for key, tensor in self.model_state.items():
            if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
                return key
        return None


class CheckpointStore:
    """The checkpoints of one train dir (a local path or s3:// URL)."""

    def __init__(self, train_dir: str, options: StorageOptions | None = None) -> None:
        self.url = join_url(train_dir, CHECKPOINT_DIR)
        self.store: Store = open_store(self.url, options)
        self._container_ready = False

    def steps(self) -> list[int]:
        """Steps that have a checkpoint, newest first."""
        return checkpoint_steps(self.store)

    def save(self, checkpoint: Checkpoint) -> str:
        """Write `checkpoint` atomically; returns its URL."""
        name = checkpoint_name(checkpoint.step)
        if not self._container_ready:
            self.store.ensure_container()
            self._container_ready = True
        self.store.write_bytes(name, checkpoint.to_bytes())
        return self.store.object_url(name)

    def load(self, step: int) -> Checkpoint:
        """The checkpoint of `step`; ValueError if it is corrupt."""
        name = checkpoint_name(step)
        checkpoint = Checkpoint.from_bytes(self.store.read_bytes(name), self.store.object_url(name))
        if checkpoint.step != step:
            raise ValueError(f"holds step {checkpoint.step}, not {step}")
        return checkpoint

    def set_aside(self, step: int, suffix: str) -> str | None:
        """Rename the checkpoint of `step` to `<name><suffix>`, which `steps()` ignores; its new URL, or None."""
        name = checkpoint_name(step)
        try:
            data = self.store.read_bytes(name)
        except ObjectNotFound:
            return None
        self.store.write_bytes(name + suffix, data)
        self.store.delete(name)
        return self.store.object_url(name + suffix)

    def latest(self, finite: bool = False) -> Checkpoint | None:
        """The newest readable checkpoint, skipping corrupt ones with a warning; None if there is none.

        With `finite`, checkpoints whose weights hold NaN or infinity (a run that diverged) are skipped too.
        """
        for step in self.steps():
            try:
                checkpoint = self.load(step)
            except ValueError as exc:
                log.warning("skipping corrupt checkpoint %s: %s", self.store.object_url(checkpoint_name(step)), exc)
                continue
            except ObjectNotFound:
                continue  # removed between listing and reading
            bad = checkpoint.non_finite() if finite else None
            if bad is None:
                return checkpoint
            log.warning("skipping checkpoint %s: weight '%s' is not finite (the run diverged)", checkpoint.name, bad)
        return None

    def require_latest(self) -> Checkpoint:
        """The newest readable checkpoint, or a TrainingError saying there is none."""
        try:
            checkpoint = self.latest()
        except StorageError as exc:
            raise TrainingError(f"cannot read checkpoints at {self.url}: {exc}", exit_code=exc.exit_code) from None
        if checkpoint is None:
            raise TrainingError(f"no valid checkpoint in {self.url}: train first (trainflow train --train-dir ...)")
        return checkpoint
