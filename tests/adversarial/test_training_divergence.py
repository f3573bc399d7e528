"""Training that diverges or is asked nonsense: one clear line, a permanent exit code, nothing poisoned left behind."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
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


def no_worker_started(run: subprocess.CompletedProcess[str]) -> bool:
    """Workers log outside an in-process run's stderr: the launcher's line before it starts any never came."""
    return "worker process(es) here" not in run.stderr and "trainflow.training.worker" not in run.stderr


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


@dataclass(frozen=True)
class DivergedThenRerun:
    """A run whose loss went NaN at step 2, then a rerun with a sane learning rate, both with TMPDIR set to `temp`."""

    train_dir: Path
    temp: Path
    diverged: subprocess.CompletedProcess[str]
    checkpoints_after_divergence: list[int]
    poisoned_after_divergence: list[int]
    metrics_after_divergence: bool
    rerun: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def diverged_then_rerun(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> DivergedThenRerun:
    """Shared by the tests of divergence and of the temp dir: each training run starts two processes (~8 s)."""
    root = tmp_path_factory.mktemp("diverged")
    train_dir, temp = root / "train", root / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    diverged = train(
        mnist_dir, train_dir, "--train-steps", "20", "--learning-rate", "1e30", "--checkpoint-every", "1", env=env
    )
    store = CheckpointStore(str(train_dir))
    poisoned = [step for step in store.steps() if store.load(step).non_finite() is not None]
    checkpoints, metrics = store.steps(), (train_dir / "metrics.json").exists()
    rerun = train(mnist_dir, train_dir, "--train-steps", "20", "--learning-rate", "0.01", env=env)
    return DivergedThenRerun(train_dir, temp, diverged, checkpoints, poisoned, metrics, rerun)


@pytest.mark.slow
def test_a_loss_gone_nan_stops_training_with_a_permanent_error_and_a_rerun_resumes_cleanly(
    diverged_then_rerun: DivergedThenRerun,
) -> None:
    run, train_dir = diverged_then_rerun.diverged, diverged_then_rerun.train_dir
    assert is_permanent(run.returncode), run.stderr
    [line] = error_lines(run)
    assert "diverged at step 2/20" in line and "lower it (e.g. --learning-rate 0.01)" in line
    assert "restarts" not in line and run.stderr.count("Stopping worker group") == 0  # no restart was tried
    assert not diverged_then_rerun.metrics_after_divergence
    assert diverged_then_rerun.poisoned_after_divergence == []  # nothing poisoned to resume from
    assert diverged_then_rerun.checkpoints_after_divergence == []
    assert (train_dir / "checkpoints" / "ckpt-000000001.pt.diverged").exists()  # set aside

    rerun = diverged_then_rerun.rerun
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
    said = [r for r in (0, 1) if f"[rank {r}] trainflow.training.worker: training diverged at step 1/10" in run.stderr]
    # Both ranks decide at step 1; the launcher stops the others when the first one ends, so under load the
    # second may be stopped before it says so. Neither goes on to a later step.
    assert said, run.stderr
    assert not re.search(r"\[rank \d\] .*step (?:[2-9]|10)/10", run.stderr), run.stderr
    assert not (tmp_path / "train" / "metrics.json").exists()


def test_a_train_dir_that_is_a_file_is_refused_up_front_and_left_alone(
    refused_here: Callable[..., subprocess.CompletedProcess[str]], mnist_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "train"
    target.write_text("my notes")
    run = refused_here("train", "--data-dir", str(mnist_dir), "--train-dir", str(target), "--train-steps", "3")
    assert is_permanent(run.returncode) and len(error_lines(run)) == 1 and "it is a file" in run.stderr, run.stderr
    assert no_worker_started(run) and target.read_text() == "my notes"


def test_resume_skips_a_checkpoint_whose_weights_are_nan(tmp_path: Path) -> None:
    store = CheckpointStore(str(tmp_path))
    spec = ModelSpec("mlp", 16)
    good = build_model(spec).state_dict()
    bad = {k: torch.full_like(v, float("nan")) for k, v in good.items()}
    store.save(Checkpoint(10, spec, good))
    store.save(Checkpoint(20, spec, bad))
    latest = store.latest(finite=True)
    assert latest is not None and latest.step == 10


def test_training_leaves_no_torchelastic_directory_in_the_temp_dir(diverged_then_rerun: DivergedThenRerun) -> None:
    run = diverged_then_rerun.rerun  # and the diverged run before it, in the same temp dir
    assert run.returncode == 0, run.stderr
    left = sorted(
        p.name for p in diverged_then_rerun.temp.iterdir() if p.name.startswith(("torchelastic_", "trainflow-"))
    )
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
    factory: str,
    says: str,
    refused_here: Callable[..., subprocess.CompletedProcess[str]],
    mnist_dir: Path,
    tmp_path: Path,
) -> None:
    run = refused_here("train", "--data-dir", str(mnist_dir), "--train-dir", str(tmp_path / "t"), "--model", factory)
    assert is_permanent(run.returncode) and len(error_lines(run)) == 1 and says in run.stderr, run.stderr
    assert no_worker_started(run)


def test_a_model_with_nan_outputs_is_refused_before_training(
    refused_here: Callable[..., subprocess.CompletedProcess[str]],
    mnist_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "nan_model.py").write_text(
        "import torch\n"
        "class Nan(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.linear = torch.nn.Linear(784, 10)\n"
        "    def forward(self, x):\n"
        "        return self.linear(x.flatten(1)) * float('nan')\n"
    )
    monkeypatch.syspath_prepend(tmp_path)
    try:
        run = refused_here(
            "train", "--data-dir", str(mnist_dir), "--train-dir", str(tmp_path / "t"), "--model", "nan_model:Nan"
        )
    finally:
        sys.modules.pop("nan_model", None)  # the next test's nan_model.py is another file
    assert is_permanent(run.returncode) and len(error_lines(run)) == 1, run.stderr
    assert "NaN or infinite logits" in error_lines(run)[0] and no_worker_started(run)
