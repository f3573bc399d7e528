"""Split a dataset between data-parallel ranks: each rank reads only its own contiguous shard."""

from __future__ import annotations


def shard_range(n: int, rank: int, world_size: int) -> range:
    """Indices [start, stop) of `rank`'s shard of `n` examples; shards differ in size by at most one."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size}")
    return range(rank * n // world_size, (rank + 1) * n // world_size)
