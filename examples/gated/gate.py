"""The evaluate step of the gated pipeline: read the test metrics the training wrote."""

from __future__ import annotations

import json


def evaluate(metrics_url: str) -> dict:
    """The test accuracy in the run's metrics.json (a path or an s3:// URL)."""
    from trainflow.storage import StorageOptions, open_store

    base, _, name = metrics_url.rpartition("/")
    metrics = json.loads(open_store(base, StorageOptions.from_env()).read_bytes(name))
    return {"accuracy": metrics["accuracy"], "steps": metrics["global_step"]}
