"""Training throughput, each figure against a baseline measured in the same run.

(a) our training loop (1 worker under the elastic agent, DDP, memmap shard, checkpoints, logging)
    against a bare single-process PyTorch loop: same model, data, batch size, optimizer, threads;
(b) our sharded memmap batch feeding against a per-item torchvision-style Dataset + DataLoader;
(c) 1 worker against 2 workers on this machine (fp32 in (a)-(c), as the bare loop);
(d) start-up: a 1-step `trainflow train --workers 2` in a fresh process, until its workers' first step
    and until it exits (median of 3), against `python -c "import torch"` (median of 3) in the same run;
    with --baseline-src (another checkout's src/, e.g. `git archive main src | tar -x -C /tmp/main`)
    its runs alternate with this code's;
(e) precision: 2 workers in bf16 mixed precision (the built-in CNN in channels_last) against fp32,
    alternating twice: examples/s and test accuracy.

    .venv/bin/python benchmarks/train.py [--steps 300] [--data-dir /work/shared/data/mnist-10k]
        [--only-start-up] [--only-precision] [--baseline-src /tmp/main/src]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trainflow.datasets import load_split, write_synthetic
from trainflow.training import ModelSpec, TrainConfig, build_model, train
from trainflow.training.batches import ShardBatches
from trainflow.training.worker_server import threads_per_worker

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"
BATCH = 100


def bare_loop(data_dir: Path, steps: int, model_name: str) -> float:
    """Examples/s of the plainest loop: whole split in one tensor, random batches, no DDP, no I/O."""
    torch.set_num_threads(threads_per_worker(1))
    split = load_split(data_dir, "train")
    images = torch.from_numpy(np.array(split.images)).unsqueeze(1).float().div_(255)
    labels = torch.from_numpy(np.array(split.labels).astype(np.int64))
    torch.manual_seed(0)
    model = build_model(ModelSpec(model_name, 100))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    began = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(labels), (BATCH,))
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images[idx]), labels[idx]).backward()
        optimizer.step()
    return steps * BATCH / (time.perf_counter() - began)


def our_loop(data_dir: Path, steps: int, workers: int, model_name: str, precision: str = "fp32") -> dict:
    """The metrics of one run of our train loop; examples/s is measured inside the workers, start-up excluded."""
    with tempfile.TemporaryDirectory() as train_dir:
        config = TrainConfig(
            str(data_dir),
            train_dir,
            train_steps=steps,
            model=model_name,
            log_every=max(1, steps // 5),
            precision=precision,
        )
        result = train(config, workers=workers, env={})
        assert result.metrics is not None
        return result.metrics


def print_precision(data_dir: Path, steps: int, model_name: str) -> None:
    runs: dict[str, list[dict]] = {"fp32": [], "bf16": []}
    for _ in range(2):
        for precision, metrics in runs.items():
            metrics.append(our_loop(data_dir, steps, 2, model_name, precision))
    rates = {p: statistics.median(m["examples_per_sec"] for m in ms) for p, ms in runs.items()}
    accuracy = {p: ", ".join(f"{m['accuracy']:.4f}" for m in ms) for p, ms in runs.items()}
    print(
        f"(e) 2 workers, fp32 {rates['fp32']:8.0f} ex/s (test accuracy {accuracy['fp32']}) | bf16 mixed "
        f"{rates['bf16']:8.0f} ex/s ({accuracy['bf16']}) | ratio {rates['bf16'] / rates['fp32']:.2f}"
    )


class TorchvisionStyleMNIST(torch.utils.data.Dataset):
    """torchvision.datasets.MNIST's per-item path: a PIL image per example, then ToTensor."""

    def __init__(self, data_dir: Path) -> None:
        split = load_split(data_dir, "train")
        self.images, self.labels = torch.from_numpy(np.array(split.images)), torch.from_numpy(np.array(split.labels))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        image = Image.fromarray(self.images[index].numpy(), mode="L")
        tensor = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).unsqueeze(0).float().div_(255)
        return tensor, int(self.labels[index])


def feeding(data_dir: Path, batches: int) -> tuple[float, float]:
    """Examples/s of (our ShardBatches, a per-item Dataset + DataLoader), feeding only."""
    ours = ShardBatches(load_split(data_dir, "train"), 0, 1, BATCH)
    began = time.perf_counter()
    for step in range(batches):
        ours.batch(step)
    ours_rate = batches * BATCH / (time.perf_counter() - began)
    loader = torch.utils.data.DataLoader(TorchvisionStyleMNIST(data_dir), batch_size=BATCH, shuffle=True, num_workers=0)
    began, seen = time.perf_counter(), 0
    for images, _ in loader:
        seen += len(images)
        if seen >= batches * BATCH:
            break
    return ours_rate, seen / (time.perf_counter() - began)


def start_up(data_dir: Path, src: Path | None = None) -> tuple[float, float]:
    """(seconds to the workers' first step, seconds to exit) of a 1-step 2-worker `trainflow train` (of `src`)."""
    env = {**os.environ, "PYTHONPATH": str(src)} if src else None
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "train.log"
        argv = [sys.executable, "-m", "trainflow", "train", "--data-dir", str(data_dir), "--train-dir", tmp + "/t"]
        with open(log_path, "w") as log:
            began = time.perf_counter()
            proc = subprocess.Popen([*argv, "--workers", "2", "--train-steps", "1"], stdout=log, stderr=log, env=env)
        first = None
        while proc.poll() is None:
            if first is None and "training steps" in log_path.read_text():
                first = time.perf_counter() - began
            time.sleep(0.01)
        ended = time.perf_counter() - began
        if proc.returncode != 0:
            raise RuntimeError(log_path.read_text())
        return (first if first is not None else ended), ended


def import_torch_seconds() -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - began


def print_start_up(data_dir: Path, baseline: Path | None = None) -> None:
    torch_s = statistics.median(import_torch_seconds() for _ in range(3))
    runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "this code": []}
    for _ in range(3):
        if baseline:
            runs["baseline"].append(start_up(data_dir, baseline))
        runs["this code"].append(start_up(data_dir))
    print(
        f"(d) `import torch` {torch_s:.2f} s; a 1-step train, 2 workers (median of 3), load {os.getloadavg()[0]:.2f}:"
    )
    for name, timed in runs.items():
        if timed:
            first, ended = statistics.median(r[0] for r in timed), statistics.median(r[1] for r in timed)
            print(
                f"    {name:9}: first step at {first:.2f} s ({first / torch_s:.2f}x), "
                f"exit at {ended:.2f} s ({ended / torch_s:.2f}x)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--data-dir", type=Path, default=SHARED_MNIST)
    parser.add_argument("--only-start-up", action="store_true", help="Only (d): the start-up of a 1-step run.")
    parser.add_argument("--only-precision", action="store_true", help="Only (e): bf16 mixed against fp32.")
    parser.add_argument("--baseline-src", type=Path, help="(d) also for this src/ directory, alternating.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data_dir = (
        args.data_dir if args.data_dir.is_dir() else write_synthetic(Path(tempfile.mkdtemp()) / "mnist", 8000, 2000)
    )
    print(
        f"data {data_dir}, model {args.model}, batch {BATCH} per worker, {args.steps} steps, "
        f"{threads_per_worker(1)} cores"
    )
    if args.only_start_up:
        print_start_up(data_dir, args.baseline_src)
        return
    if args.only_precision:
        print_precision(data_dir, args.steps, args.model)
        return

    bare = bare_loop(data_dir, args.steps, args.model)
    one = float(our_loop(data_dir, args.steps, 1, args.model)["examples_per_sec"])
    print(f"(a) bare loop {bare:8.0f} ex/s | ours, 1 worker {one:8.0f} ex/s | ratio {one / bare:.2f} (goal >= 0.95)")
    ours_feed, loader_feed = feeding(data_dir, 200)
    print(
        f"(b) DataLoader {loader_feed:8.0f} ex/s | ours {ours_feed:8.0f} ex/s | ratio {ours_feed / loader_feed:.1f}x (goal >= 10x)"
    )
    two = float(our_loop(data_dir, args.steps, 2, args.model)["examples_per_sec"])
    print(f"(c) 1 worker {one:8.0f} ex/s | 2 workers {two:8.0f} ex/s | ratio {two / one:.2f}")
    print_start_up(data_dir, args.baseline_src)
    print_precision(data_dir, args.steps, args.model)


if __name__ == "__main__":
    main()
