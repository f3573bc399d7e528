"""A fixed trial budget, three ways: TPE with median stopping, TPE with Hyperband, random search without stopping.

Each study runs `trainflow step tune` (what a Tune step runs) over `trainflow step train-model` trials: the
MLP on MNIST (../shared/data/mnist-10k: 10,000 training images), --steps global steps of batch 50, evaluated
every --eval-every steps (the intermediate values early stopping compares). The search space is the
learning rate (log, 1e-4 to 0.3), the hidden units (16 to 256) and the optimizer (adam, sgd). For each seed
every variant runs with the same budget (--trials trials, --parallel at once); printed per seed and summed:
the best test accuracy and the training steps every trial ran together (a pruned trial counts the steps
it reached). The goal: TPE + pruning reaches at least random's best accuracy with at most 60% of its steps.

    .venv/bin/python benchmarks/tune.py [--trials 16] [--seeds 0,1,2] [--parallel 2] [--steps 100] [--eval-every 10]
        [--variants tpe+median,tpe+hyperband,random]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-10k"
SPACE = {
    "lr": {"type": "float", "low": 0.0001, "high": 0.3, "log": True},
    "hidden": {"type": "int", "low": 16, "high": 256},
    "optimizer": {"type": "choice", "values": ["adam", "sgd"]},
}
VARIANTS = {"tpe+median": ("tpe", "median"), "tpe+hyperband": ("tpe", "hyperband"), "random": ("random", "none")}
BASELINE = "random"


def trial_args(train_dir: Path, steps: int, eval_every: int) -> list[str]:
    words = [
        ("text", "trainflow"), ("text", "step"), ("text", "train-model"),
        ("text", "--data-dir"), ("text", str(MNIST)),
        ("text", "--train-dir"), ("train-dir", str(train_dir)),
        ("text", "--learning-rate"), ("param:lr", "0.01"),
        ("text", "--hidden-units"), ("param:hidden", "100"),
        ("text", "--optimizer"), ("param:optimizer", "adam"),
        ("text", "--model"), ("text", "mlp"),
        ("text", "--train-steps"), ("text", str(steps)),
        ("text", "--batch-size"), ("text", "50"),
        ("text", "--eval-every"), ("text", str(eval_every)),
        ("text", "--precision"), ("text", "fp32"),
        ("text", "--checkpoint-every"), ("text", str(steps)),
    ]  # fmt: skip
    return [t for how, text in words for t in ("--trial-arg", how, text)]


def study(work: Path, name: str, seed: int, args: argparse.Namespace) -> dict[str, float]:
    algorithm, stopping = VARIANTS[name]
    folder = work / f"{name}-{seed}"
    command = [
        sys.executable, "-m", "trainflow", "step", "tune", "--study", f"s{seed}",
        "--search-space", json.dumps(SPACE), "--max-trials", str(args.trials), "--parallel-trials", str(args.parallel),
        "--algorithm", algorithm, "--early-stopping", stopping, "--seed", str(seed),
        "--study-dir", str(folder / "study"), "--outputs", str(folder / "outputs.json"),
        *trial_args(folder / "train", args.steps, args.eval_every),
    ]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "TRAINFLOW_HOME": str(work / "home")}
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} seed {seed} failed: {done.stderr[-2000:]}")
    trials = json.loads((folder / "study" / "study.json").read_text())["trials"]
    best = max((t["value"] for t in trials if t["state"] == "complete"), default=float("nan"))
    return {
        "best": best,
        "steps": sum(t["steps"] for t in trials),
        "pruned": sum(t["state"] == "pruned" for t in trials),
        "seconds": time.perf_counter() - began,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    variants = list(dict.fromkeys(args.variants.split(",")))
    if unknown := [v for v in variants if v not in VARIANTS]:
        parser.error(f"unknown variant {unknown[0]}: use {', '.join(VARIANTS)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="tune-bench-"))
    seeds = [int(s) for s in args.seeds.split(",")]
    totals = {name: {"best": 0.0, "steps": 0.0} for name in variants}
    print(
        f"{args.trials} trials per study, {args.parallel} at once, {args.steps} steps each; load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'seed':>4} {'variant':>13} {'best acc':>9} {'steps':>7} {'pruned':>6} {'seconds':>8}")
    for seed in seeds:
        for name in variants:  # the same seed for each, one after the other
            found = study(work, name, seed, args)
            totals[name]["best"] += found["best"] / len(seeds)
            totals[name]["steps"] += found["steps"]
            print(
                f"{seed:>4} {name:>13} {found['best']:>9.4f} {found['steps']:>7.0f} {found['pruned']:>6.0f} {found['seconds']:>8.1f}"
            )
    rnd = totals.get(BASELINE)
    for name, found in totals.items():
        if rnd is None or name == BASELINE:
            continue
        print(
            f"{name}: mean best accuracy {found['best']:.4f} against random's {rnd['best']:.4f} (goal: at least);"
            f" total steps {found['steps']:.0f} against {rnd['steps']:.0f}: ratio {found['steps'] / rnd['steps']:.2f}"
            " (goal: <= 0.60)"
        )


if __name__ == "__main__":
    main()
