"""Checkpoint object names (`<train dir>/checkpoints/ckpt-000000600.pt`): readable without torch."""

from __future__ import annotations

import re

from trainflow.storage import ObjectNotFound, Store

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^ckpt-(\d{9})\.pt\Z")


def checkpoint_name(step: int) -> str:
    return f"ckpt-{step:09d}.pt"


def checkpoint_steps(store: Store) -> list[int]:
    """Steps that have a checkpoint in `store` (a train dir's checkpoints/), newest first."""
    try:
        infos = store.list()
    except ObjectNotFound:
        return []
    found = (_NAME.match(info.name) for info in infos)
    return sorted((int(m.group(1)) for m in found if m), reverse=True)
