"""Training that diverges or is asked nonsense: one clear line, a permanent exit code, nothing poisoned left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainflow.training import Checkpoint, CheckpointStore, ModelSpec, build_model


def trainflow(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainflow", *args],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        timeout=timeout,
    )


def train(
    data_dir: Path, train_dir: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return trainflow(
        "train",
        "--data-dir",
        str(data_dir),
        "--train-dir",
        str(train_dir),
        "--model",
        "mlp",
        "--hidden-units",
        "16",
        "--log-every",
        "5",
        *extra,
        env=env,
    )


def error_lines(run: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.startswith("error:")]


def is_permanent(code: int) -> bool:
    return 1 <= code <= 127


@pytest.mark.parametrize(
    "option",
    [
        ("--learning-rate", "inf"),
        ("--learning-rate", "-inf"),
        ("--learning-rate", "nan"),
        ("--learning-rate", "0"),
        ("--train-steps", "0"),
        ("--batch-size", "-1"),
        ("--hidden-units", "0"),
        ("--workers", "0"),
        ("--batch-size", "100000000"),  # more than the dataset: would only exhaust memory
    ],
)
def test_nonsense_options_are_refused_before_any_worker_starts(
    option: tuple[str, str], mnist_dir: Path, tmp_path: Path
) -> None:
    run = train(mnist_dir, tmp_path / "train", "--train-steps", "5", *option)
    assert is_permanent(run.returncode), run.stderr
    assert len(error_lines(run)) == 1 and option[0] in error_lines(run)[0], run.stderr
    assert "trainflow.training.worker" not in run.stderr  # refused up front: no worker ran
    assert not (tmp_path / "train" / "metrics.json").exists()


@pytest.mark.slow
def test_a_loss_gone_nan_stops_training_with_a_permanent_error_and_a_rerun_resumes_cleanly(
    mnist_dir: Path, tmp_path: Path
) -> None:
    train_dir = tmp_path / "train"
    run = train(mnist_dir, train_dir, "--train-steps", "20", "--learning-rate", "1e30", "--checkpoint-every", "1")
    assert is_permanent(run.returncode), run.stderr
    [line] = error_lines(run)
    assert "diverged at step 2/20" in line and "lower it (e.g. --learning-rate 0.01)" in line
    assert "restarts" not in line and run.stderr.count("Stopping worker group") == 0  # no restart was tried
    assert not (train_dir / "metrics.json").exists()
    store = CheckpointStore(str(train_dir))
    assert all(store.load(step).non_finite() is None for step in store.steps())  # nothing poisoned to resume from
    assert store.steps() == [] and (train_dir / "checkpoints" / "ckpt-000000001.pt.diverged").exists()  # set aside

    rerun = train(mnist_dir, train_dir, "--train-steps", "20", "--learning-rate", "0.01")
    assert rerun.returncode == 0, rerun.stderr
    metrics = json.loads((train_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 20 and 0.0 < metrics["loss"] < 10 and metrics["accuracy"] > 0.3


NAN_ON_RANK_1 = """
import os
import torch

class NanOnRank1(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(784, 10)

    def forward(self, x):
        logits = self.linear(x.flatten(1))
        return logits * float("nan") if self.training and os.environ.get("RANK") == "1" else logits
"""


@pytest.mark.slow
def test_a_nan_loss_on_one_rank_stops_every_rank_at_the_same_step(mnist_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "nan_rank.py").write_text(NAN_ON_RANK_1)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = trainflow(
        "train",
        "--data-dir",
        str(mnist_dir),
        "--train-dir",
        str(tmp_path / "train"),
        "--workers",
        "2",
        "--train-steps",
        "10",
        "--model",
        "nan_rank:NanOnRank1",
        env=env,
    )
    assert is_permanent(run.returncode), run.stderr  # not a lost peer (143), not a hang
    assert len(error_lines(run)) == 1 and "diverged at step 1/10" in error_lines(run)[0], run.stderr
    for rank in (0, 1):
        assert f"[rank {rank}] trainflow.training.worker: training diverged at step 1/10" in run.stderr
    assert not (tmp_path / "train" / "metrics.json").exists()


def test_a_train_dir_that_is_a_file_is_refused_up_front_and_left_alone(mnist_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "train"
    target.write_text("my notes")
    run = train(mnist_dir, target, "--train-steps", "3")
    assert is_permanent(run.returncode) and len(error_lines(run)) == 1 and "it is a file" in run.stderr, run.stderr
    assert "trainflow.training.worker" not in run.stderr and target.read_text() == "my notes"


def test_resume_skips_a_checkpoint_whose_weights_are_nan(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path))
    spec = ModelSpec("mlp", 16)
    good = build_model(spec).state_dict()
    bad = {k: torch.full_like(v, float("nan")) for k, v in good.items()}
    store.save(Checkpoint(10, spec, good))
    store.save(Checkpoint(20, spec, bad))
    latest = store.latest(finite=True)
    assert latest is not None and latest.step == 10


def test_training_leaves_no_torchelastic_directory_in_the_temp_dir(mnist_dir: Path, tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    run = train(mnist_dir, tmp_path / "train", "--train-steps", "3", env={**os.environ, "TMPDIR": str(temp)})
    assert run.returncode == 0, run.stderr
    left = sorted(p.name for p in temp.iterdir() if p.name.startswith(("torchelastic_", "trainflow-")))
    assert left == []


@pytest.mark.parametrize(
    ("factory", "says"),
    [
        ("sys:exit", "the factory failed: SystemExit"),
        ("builtins:object", "not a torch.nn.Module"),
        ("math:nan", "is a float, not a callable"),
    ],
)
def test_a_model_factory_that_exits_or_returns_nonsense_is_one_line(
    factory: str, says: str, mnist_dir: Path, tmp_path: Path
) -> None:
    run = trainflow("train", "--data-dir", str(mnist_dir), "--train-dir", str(tmp_path / "t"), "--model", factory)
    assert is_permanent(run.returncode) and len(error_lines(run)) == 1 and says in run.stderr, run.stderr


def test_a_model_with_nan_outputs_is_refused_before_training(mnist_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "nan_model.py").write_text(
        "import torch\n"
        "class Nan(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.linear = torch.nn.Linear(784, 10)\n"
        "    def forward(self, x):\n"
        "        return self.linear(x.flatten(1)) * float('nan')\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = trainflow(
        "train", "--data-dir", str(mnist_dir), "--train-dir", str(tmp_path / "t"), "--model", "nan_model:Nan", env=env
    )
    assert is_permanent(run.returncode) and len(error_lines(run)) == 1, run.stderr
    assert "NaN or infinite logits" in error_lines(run)[0]
