"""Checkpoints: latest valid one wins, corrupt ones are skipped, local and S3 alike."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from trainflow.training import Checkpoint, CheckpointStore, ModelSpec, TrainingError, build_model


def checkpoint(step: int) -> Checkpoint:
    torch.manual_seed(step)
    model = build_model(ModelSpec("mlp", 16))
    return Checkpoint(step, ModelSpec("mlp", 16), model.state_dict(), None)


@pytest.fixture(params=["local", "s3"])
def train_dir(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "train")
    return f"{request.getfixturevalue('s3_bucket')}/unfinished/myjob"


def test_latest_checkpoint_is_the_highest_step(train_dir: str) -> None:
    store = CheckpointStore(train_dir)
    for step in (20, 100, 60):
        store.save(checkpoint(step))
    latest = store.latest()
    assert latest is not None and latest.step == 100 and latest.model_spec == ModelSpec("mlp", 16)
    assert torch.equal(latest.model_state["1.weight"], checkpoint(100).model_state["1.weight"])
    assert store.steps() == [100, 60, 20]


def test_corrupt_latest_checkpoint_is_skipped_with_a_warning(train_dir: str, caplog: pytest.LogCaptureFixture) -> None:
    store = CheckpointStore(train_dir)
    store.save(checkpoint(40))
    good = store.save(checkpoint(80))
    store.store.write_bytes("ckpt-000000120.pt", checkpoint(120).to_bytes()[:500])  # a torn write
    with caplog.at_level(logging.WARNING):
        latest = store.latest()
    assert latest is not None and latest.step == 80 and latest.name == good
    assert "skipping corrupt checkpoint" in caplog.text and "ckpt-000000120.pt" in caplog.text


def test_no_checkpoint_yet_means_start_from_scratch(train_dir: str) -> None:
    assert CheckpointStore(train_dir).latest() is None
    with pytest.raises(TrainingError, match="no valid checkpoint .* train first"):
        CheckpointStore(train_dir).require_latest()


def test_checkpoint_written_locally_leaves_no_temp_files(tmp_path: Path) -> None:
    CheckpointStore(str(tmp_path)).save(checkpoint(10))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["ckpt-000000010.pt"]
