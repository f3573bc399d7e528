"""`--model auto`, the default: the CNN for images, the MLP for feature vectors, and the run says which."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands import trainflow
from tests.datasets.sample_data import write_colour_folders, write_iris_csv
from trainflow.pipelines.builtin import PIPELINES
from trainflow.training import CheckpointStore


def _synced(source: Path, name: str, *options: str) -> Path:
    out = trainflow("data", "sync", str(source), "--name", name, *options)
    assert out.returncode == 0, out.stderr
    return Path(out.stdout.split(" -> ")[1].splitlines()[0].strip())


def _trained_model(data_dir: Path, train_dir: Path) -> tuple[str, str]:
    """`trainflow train` without --model: the log line naming the choice, and the model the checkpoint holds."""
    out = trainflow(
        "train", "--data-dir", str(data_dir), "--train-dir", str(train_dir), "--train-steps", "3", "--batch-size", "6"
    )
    assert out.returncode == 0, out.stderr
    said = [line for line in out.stderr.splitlines() if "--model auto:" in line]
    assert len(said) == 1, out.stderr
    store = CheckpointStore(str(train_dir))
    return said[0].split("--model auto: ")[1], store.load(store.steps()[-1]).model_spec.name


@pytest.mark.slow
def test_train_without_model_trains_the_mlp_on_a_table(trainflow_home: Path, tmp_path: Path) -> None:
    iris = _synced(write_iris_csv(tmp_path / "iris"), "iris", "--label-column", "species")
    said, stored = _trained_model(iris, tmp_path / "train")
    assert said.startswith("mlp, as the dataset's examples are feature vectors [4]")
    assert stored == "mlp"


@pytest.mark.slow
def test_train_without_model_trains_the_cnn_on_images(trainflow_home: Path, tmp_path: Path) -> None:
    colours = _synced(write_colour_folders(tmp_path / "colours"), "colours", "--image-size", "8x6")
    said, stored = _trained_model(colours, tmp_path / "train")
    assert said.startswith("cnn, as the dataset's examples are images [3, 8, 6]")
    assert stored == "cnn"


def test_run_and_model_train_default_to_auto() -> None:
    model = next(p for p in PIPELINES["model-train"].params if p.name == "model")
    assert model.default == "auto"
    for command in (["run", "--help"], ["train", "--help"], ["step", "train-model", "--help"]):
        out = trainflow(*command)
        assert out.returncode == 0, out.stderr
        assert "[default: auto]" in " ".join(out.stdout.split()), command
