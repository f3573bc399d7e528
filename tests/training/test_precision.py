"""Mixed precision: which runs train in bf16, and that what they save is the same fp32 model as ever."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from commands import trainflow

from trainflow.export import export_model
from trainflow.training import CheckpointStore
from trainflow.training.loop import autocast_dtype


@pytest.mark.parametrize("instructions", [True, False], ids=["bf16-cpu", "older-cpu"])
def test_auto_is_bf16_only_on_a_cpu_with_bfloat16_instructions(instructions: bool, monkeypatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: instructions)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) == (torch.bfloat16 if instructions else None)
    assert autocast_dtype("bf16", cpu) == torch.bfloat16  # asked for: emulated where the CPU lacks the instructions
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("auto", torch.device("cuda", 0)) is None


def test_a_bf16_run_saves_fp32_weights_that_export_and_resume_in_fp32(mnist_dir: Path, tmp_path: Path) -> None:
    train_dir = tmp_path / "train"
    common = ("train", "--data-dir", str(mnist_dir), "--train-dir", str(train_dir), "--checkpoint-every", "30")
    out = trainflow(*common, "--train-steps", "30", "--precision", "bf16")
    assert out.returncode == 0, out.stderr
    metrics = json.loads((train_dir / "metrics.json").read_text())
    assert metrics["precision"] == "bf16-mixed" and metrics["accuracy"] > 0.5
    assert "(bf16-mixed)" in out.stdout and "bf16-mixed precision" in out.stderr
    saved = CheckpointStore(str(train_dir)).require_latest()
    assert {t.dtype for t in saved.model_state.values() if t.is_floating_point()} == {torch.float32}
    exported = export_model(str(train_dir), str(tmp_path / "exported"))  # checks ONNX Runtime against torch
    assert exported.global_step == 30
    out = trainflow(*common, "--train-steps", "40", "--precision", "fp32")
    assert out.returncode == 0, out.stderr
    metrics = json.loads((train_dir / "metrics.json").read_text())
    assert (metrics["resumed_from_step"], metrics["precision"]) == (30, "fp32")
    assert metrics["accuracy"] > 0.5
