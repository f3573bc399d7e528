"""The example's step functions: list the shards of a dataset, score each, keep the best."""

import json
import math


def list_shards(count: int, fail: str = "") -> dict:
    """One item per shard, each an object whose fields the next step reads (a real step would list a bucket)."""
    shards = [
        {"shard": f"shard-{i:03d}", "rows": 100 * (i + 1), "fail": f"shard-{i:03d}" == fail} for i in range(count)
    ]
    return {"shards": json.dumps(shards)}


def score(shard: str, rows: int, fail: bool = False) -> dict:
    """Score one shard (here a made-up number); `fail` makes it fail, to see the notification."""
    if fail:
        raise RuntimeError(f"{shard} is corrupt")
    return {"score": round(1 - 1 / math.sqrt(rows), 4)}


def best(scores: list) -> dict:
    top = max(range(len(scores)), key=lambda i: float(scores[i]))
    return {"best": top, "score": scores[top]}
