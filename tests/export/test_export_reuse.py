"""export-model reuses the version train-model exported from the newest checkpoint, and only that one."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.export.test_export import train_briefly
from trainflow.export import export_model, reusable_version
from trainflow.export.signature import MODEL_FILE
from trainflow.training import ModelSpec


def step(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainflow", "step", *args], capture_output=True, text=True, timeout=300
    )


def test_export_model_reuses_the_version_train_model_exported(mnist_dir: Path, tmp_path: Path) -> None:
    train_dir, base, outputs = tmp_path / "train", tmp_path / "exported", tmp_path / "out.json"
    trained = step(
        "train-model",
        *("--data-dir", str(mnist_dir), "--train-dir", str(train_dir), "--export-base", str(base)),
        *("--workers", "1", "--train-steps", "4", "--model", "mlp", "--hidden-units", "16"),
    )
    assert trained.returncode == 0, trained.stderr
    assert "exported step 4 as version 1" in trained.stdout
    exported = step(
        "export-model",
        *("--train-dir", str(train_dir), "--export-base", str(base), "--model", "mlp", "--hidden-units", "16"),
        *("--outputs", str(outputs)),
    )
    assert exported.returncode == 0, exported.stderr
    assert "version 1 is the export of step 4" in exported.stdout
    assert json.loads(outputs.read_text())["model-version"] == 1
    assert sorted(p.name for p in base.iterdir()) == ["1"]  # nothing published twice


def test_export_model_exports_anew_when_training_did_not(mnist_dir: Path, tmp_path: Path) -> None:
    train_dir, base = tmp_path / "train", tmp_path / "exported"
    train_briefly(str(train_dir), ModelSpec("mlp", 16), mnist_dir, steps=2)
    exported = step("export-model", "--train-dir", str(train_dir), "--export-base", str(base))
    assert exported.returncode == 0, exported.stderr
    assert "exported step 2 as version 1" in exported.stdout
    assert (base / "1" / MODEL_FILE).is_file()


@pytest.fixture
def exported(mnist_dir: Path, tmp_path: Path) -> tuple[str, str]:
    """A train dir with one checkpoint (mlp, 16 units, step 3) and its export as version 1."""
    train_dir, base = str(tmp_path / "train"), str(tmp_path / "exported")
    train_briefly(train_dir, ModelSpec("mlp", 16), mnist_dir, steps=3)
    export_model(train_dir, base)
    return train_dir, base


def test_the_export_of_the_newest_checkpoint_is_reused(exported: tuple[str, str]) -> None:
    train_dir, base = exported
    found = reusable_version(train_dir, base, "mlp", 16)
    assert found is not None and found.reused
    assert (found.version, found.global_step, found.url) == (1, 3, str(Path(base) / "1"))


def test_a_newer_checkpoint_is_exported_anew(exported: tuple[str, str], mnist_dir: Path) -> None:
    train_dir, base = exported
    train_briefly(train_dir, ModelSpec("mlp", 16), mnist_dir, steps=4)
    assert reusable_version(train_dir, base) is None


def test_a_rewritten_checkpoint_of_the_same_step_is_exported_anew(exported: tuple[str, str], mnist_dir: Path) -> None:
    train_dir, base = exported
    train_briefly(train_dir, ModelSpec("mlp", 16), mnist_dir, steps=3)  # same step, same name, fresh optimizer bytes
    checkpoint = Path(train_dir) / "checkpoints" / "ckpt-000000003.pt"
    checkpoint.write_bytes(checkpoint.read_bytes() + b"\0")
    assert reusable_version(train_dir, base) is None


def test_a_damaged_model_file_is_exported_anew(exported: tuple[str, str]) -> None:
    train_dir, base = exported
    model = Path(base) / "1" / MODEL_FILE
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    assert reusable_version(train_dir, base) is None


def test_another_model_or_size_asked_for_is_exported_anew(exported: tuple[str, str]) -> None:
    train_dir, base = exported
    assert reusable_version(train_dir, base, "cnn") is None
    assert reusable_version(train_dir, base, "mlp", 32) is None


def test_a_version_exported_from_another_train_dir_is_not_reused(exported: tuple[str, str], tmp_path: Path) -> None:
    _, base = exported
    assert reusable_version(str(tmp_path / "elsewhere"), base) is None


def test_nothing_is_reused_from_an_empty_export_base(mnist_dir: Path, tmp_path: Path) -> None:
    train_briefly(str(tmp_path / "train"), ModelSpec("mlp", 16), mnist_dir, steps=1)
    assert reusable_version(str(tmp_path / "train"), str(tmp_path / "nothing")) is None


def test_a_failed_export_after_training_leaves_training_done_and_export_model_says_why(
    refused_here: Callable[..., subprocess.CompletedProcess[str]], mnist_dir: Path, tmp_path: Path
) -> None:
    train_dir, base = tmp_path / "train", tmp_path / "a-file"
    base.write_text("not a directory")
    trained = step(
        "train-model",
        *("--data-dir", str(mnist_dir), "--train-dir", str(train_dir), "--export-base", str(base)),
        *("--workers", "1", "--train-steps", "2", "--model", "mlp", "--hidden-units", "16"),
    )
    assert trained.returncode == 0, trained.stderr
    assert "not exported after training" in trained.stdout and "export-model exports it" in trained.stdout
    assert (train_dir / "metrics.json").is_file()
    exported = refused_here("step", "export-model", "--train-dir", str(train_dir), "--export-base", str(base))
    assert exported.returncode != 0
    assert exported.stderr.startswith("error: ") and len(exported.stderr.strip().splitlines()) == 1, exported.stderr


def test_the_export_on_s3_is_reused(mnist_dir: Path, s3_bucket: str, tmp_path: Path) -> None:
    train_dir, base = f"{s3_bucket}/train/job", f"{s3_bucket}/exported/job"
    train_briefly(train_dir, ModelSpec("mlp", 16), mnist_dir, steps=2)
    first = export_model(train_dir, base)
    found = reusable_version(train_dir, base, "mlp", 16)
    assert found is not None and (found.version, found.url, found.global_step) == (1, first.url, 2)
