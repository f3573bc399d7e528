"""A block's feature sums, taken a few hundred KiB at a time, are the bits of the whole block cast to float64 at once."""

from __future__ import annotations

import numpy as np
import pytest

from trainflow.datasets import checks


def whole_block(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sums as the block cast at once gives them (numpy keeps a column-major block's order, and sums it so)."""
    values = rows.astype(np.float64)
    return values.sum(axis=0), (values * values).sum(axis=0)


@pytest.mark.parametrize(
    ("rows", "width", "order", "part_bytes"),
    [
        (65536, 20, "C", 256 << 10),
        (65536, 784, "C", 256 << 10),
        (1639, 20, "C", 8 * 20 * 64),
        (64, 20, "C", 8 * 20 * 64),
        (1, 3, "C", 8),
        (0, 4, "C", 8),
        (65536, 1, "C", 256 << 10),  # one column: numpy sums it pairwise
        (65536, 20, "F", 256 << 10),  # column-major (a .npy saved from pandas): pairwise down each column
    ],
)
def test_sums_a_part_at_a_time_are_the_whole_blocks_bits(
    monkeypatch: pytest.MonkeyPatch, rows: int, width: int, order: str, part_bytes: int
) -> None:
    monkeypatch.setattr(checks, "_SUMS_BYTES", part_bytes)
    rng = np.random.default_rng(rows + width)
    block = np.asarray((rng.normal(size=(rows, width)) * rng.uniform(1e-3, 1e6, width)).astype(np.float32), order=order)

    total, squares = checks.block_sums(block)

    want_total, want_squares = whole_block(block)
    assert total.tobytes() == want_total.tobytes() and squares.tobytes() == want_squares.tobytes()
