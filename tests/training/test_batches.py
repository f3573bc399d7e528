"""Each rank's batches: its own shard only, whole batches from the memmap, reproducible by step."""

from __future__ import annotations

import numpy as np
import pytest

from trainflow.datasets import Split
from trainflow.training import TrainingError
from trainflow.training.batches import ShardBatches


def numbered_split(n: int) -> Split:
    """Image i is filled with i % 256, label i % 10: a batch tells which examples it holds."""
    images = np.repeat((np.arange(n) % 256).astype(np.uint8)[:, None, None], 28 * 28, axis=1).reshape(n, 28, 28)
    return Split(images, (np.arange(n) % 10).astype(np.uint8))


def test_ranks_read_disjoint_shards_that_cover_the_split() -> None:
    split = numbered_split(250)
    seen = []
    for rank in range(2):
        batches = ShardBatches(split, rank, 2, batch_size=25)
        seen.append({int(i) + rank * 125 for step in range(5) for i in batches.indices(step)})
    assert seen[0].isdisjoint(seen[1])
    assert seen[0] | seen[1] == set(range(250))


def test_batches_are_float_images_in_unit_range_with_int64_labels() -> None:
    images, labels = ShardBatches(numbered_split(100), 0, 1, batch_size=32).batch(0)
    assert images.shape == (32, 1, 28, 28) and images.dtype.is_floating_point
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert labels.dtype.is_signed and labels.shape == (32,)
    # every image still belongs with its own label
    assert all(round(float(img[0, 0, 0]) * 255) % 10 == int(lab) for img, lab in zip(images, labels))


def test_every_epoch_visits_each_example_once_in_a_new_order() -> None:
    batches = ShardBatches(numbered_split(100), 0, 1, batch_size=10)
    epoch0 = np.concatenate([batches.indices(s) for s in range(10)])
    epoch1 = np.concatenate([batches.indices(s) for s in range(10, 20)])
    assert sorted(epoch0) == sorted(epoch1) == list(range(100))
    assert not np.array_equal(epoch0, epoch1)


def test_batch_of_a_step_is_the_same_after_a_restart() -> None:
    split = numbered_split(90)
    uninterrupted = ShardBatches(split, 1, 2, batch_size=20, seed=7)
    expected = [uninterrupted.indices(s) for s in range(12)]
    resumed = ShardBatches(split, 1, 2, batch_size=20, seed=7)
    assert all(np.array_equal(resumed.indices(s), expected[s]) for s in (11, 5, 7))


def test_a_rank_with_no_examples_is_told_to_use_fewer_workers() -> None:
    with pytest.raises(TrainingError, match="use fewer workers"):
        ShardBatches(numbered_split(1), 0, 2, batch_size=4)
