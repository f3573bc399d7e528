"""model-tune on one machine: a real study on MNIST (2 workers per trial), bad trials pruned, the best model served."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path

import psutil
import pytest

from tests import commands

pytestmark = pytest.mark.slow

trainflow = partial(commands.trainflow, timeout=900)
# Learning rates far apart: the tiny ones lag at every evaluation, so median stopping prunes some of them.
RATES = ["0.003", "0.00001", "0.002", "0.00002", "0.001", "0.00003"]


def test_model_tune_prunes_bad_trials_and_serves_the_best_model(mnist_dir: Path, trainflow_home: Path) -> None:
    space = json.dumps({"model-learning-rate": {"type": "choice", "values": RATES}})
    params = {
        "job-name": "tuned",
        "s3-data-url": str(mnist_dir),
        "model": "mlp",
        "tf-worker": "2",
        "model-train-steps": "60",
        "model-eval-every": "10",
        "model-batch-size": "50",
        "model-precision": "fp32",
        "search-space": space,
        "algorithm": "grid",
        "early-stopping": "median",
        "max-trials": "6",
        "parallel-trials": "1",
        "seed": "3",
    }
    try:
        run = trainflow("submit", "model-tune", *(t for k, v in params.items() for t in ("-p", f"{k}={v}")), "--wait")
        assert run.returncode == 0, run.stdout + run.stderr
        info = commands.get_workflow("tuned")
        trials = info["trials"]
        assert sorted(t["params"]["model-learning-rate"] for t in trials) == sorted(RATES)
        pruned = [t for t in trials if t["state"] == "pruned"]
        assert pruned, [(t["params"], t["state"], t["value"]) for t in trials]
        for trial in pruned:  # the trainer and its two workers all ended when the trial was pruned
            alive = [
                p for p in psutil.process_iter(["cmdline"]) if trial["train_dir"] in " ".join(p.info["cmdline"] or [])
            ]
            assert alive == [], f"pruned trial {trial['number']} left {len(alive)} processes"
            assert trial["steps"] < 60
        [best] = [t for t in trials if t["best"]]
        assert float(best["params"]["model-learning-rate"]) >= 0.001 and best["value"] > 0.8
        steps = commands.steps_by_name(info)
        assert steps["tune-model"]["outputs"]["best-train-dir"] == best["train_dir"]
        serve = steps["serve-model"]["outputs"]
        assert serve["model-version"] == 1
        dataset = steps["download-dataset"]["outputs"]["dataset-path"]
        predicted = trainflow("predict", "--server", serve["grpc-address"], "--data-dir", dataset, "--num-tests", "100")
        assert predicted.returncode == 0, predicted.stderr
        rate = float(re.search(r"Inference error rate: ([\d.]+)%", predicted.stdout).group(1))  # type: ignore[union-attr]
        assert rate < 25.0, predicted.stdout
        shown = trainflow("get", "tuned").stdout
        assert "tune-model: trials" in shown and "pruned" in shown
    finally:
        trainflow("delete", "tuned")
