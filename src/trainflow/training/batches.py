"""Feed one rank its shard of a memory-mapped split, a whole batch per index operation.

The batch of global step `s` is a pure function of (shard, seed, s): positions [s*B, (s+1)*B) in
the endless sequence of per-epoch shuffles of the shard. A run resumed at step `s` therefore sees
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import numpy as np
import torch

from trainflow.datasets import Normalization, Split, shard_range
from trainflow.training.errors import TrainingError

PIXELS_TO_UNIT = Normalization(1 / 255, (0.0,), (1.0,))  # MNIST's: uint8 pixels to [0, 1]


def to_tensor(examples: np.ndarray, normalization: Normalization = PIXELS_TO_UNIT) -> torch.Tensor:
    """Raw examples [N, *input_shape] ([N, H, W] for one-channel images) -> the model's float32 input."""
    if examples.ndim == 3:  # [N, H, W]: one channel
        examples = examples[:, None]
    if all(m == 0 for m in normalization.mean) and all(s == 1 for s in normalization.std):
        scaled = np.multiply(examples, np.float32(normalization.scale), dtype=np.float32)
        return torch.from_numpy(scaled)  # scaling alone: one pass instead of three (MNIST's case)
    return torch.from_numpy(np.ascontiguousarray(normalization.apply(examples)))


class ShardBatches:
    """Batches of `batch_size` examples from `rank`'s shard of `split`, shuffled per epoch, normalized."""

    def __init__(
        self,
        split: Split,
        rank: int,
        world_size: int,
        batch_size: int,
        seed: int = 0,
        normalization: Normalization = PIXELS_TO_UNIT,
    ) -> None:
        if batch_size < 1:
            raise TrainingError(f"--batch-size must be at least 1, got {batch_size}")
        shard = shard_range(len(split), rank, world_size)
        if len(shard) == 0:
            raise TrainingError(
                f"rank {rank} of {world_size} gets no training examples: "
                f"the split has only {len(split)}; use fewer workers"
            )
        # Slices of a memmap are memmaps: nothing is read until a batch is gathered.
        self.images = split.images[shard.start : shard.stop]
        self.labels = split.labels[shard.start : shard.stop]
        self.batch_size = batch_size
        self.normalization = normalization
        self.seed = seed + 1000003 * rank
        self._epoch = -1
        self._order = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def _order_of(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._order = np.random.default_rng((self.seed, epoch)).permutation(len(self))
            self._epoch = epoch
        return self._order

    def indices(self, step: int) -> np.ndarray:
        """Shard-relative example indices of the batch for global step `step`."""
        n = len(self)
        start = step * self.batch_size
        parts, remaining = [], self.batch_size
        while remaining:
            epoch, offset = divmod(start, n)
            take = min(remaining, n - offset)
            parts.append(self._order_of(epoch)[offset : offset + take])
            start += take
            remaining -= take
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(examples [B, *input_shape] float32, labels [B] int64) for global step `step`."""
        # Sorted indices read the memmap front to back; the order within a batch does not matter.
        idx = np.sort(self.indices(step))
        return to_tensor(self.images[idx], self.normalization), torch.from_numpy(self.labels[idx].astype(np.int64))
