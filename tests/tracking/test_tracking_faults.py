"""A tracking server that dies mid-training costs warnings, never the training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tracking.conftest import start_mlflow, stop_mlflow

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# long enough that the server dies well before the end: 80 steps took 1 s on an idle machine, less than
# the sink's first flush, so the kill came after training had ended; 1,500 took 300 s on a loaded CI machine
STEPS = 500


def test_the_server_killed_mid_training_and_training_still_finishes(mnist_dir: Path, tmp_path: Path) -> None:
    server = start_mlflow(tmp_path / "mlflow")
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.uri, "TRAINFLOW_HOME": str(tmp_path / "home")}
    argv = [sys.executable, "-m", "trainflow", "step", "train-model", "--data-dir", str(mnist_dir)]
    argv += ["--train-dir", str(tmp_path / "train"), "--workers", "1", "--train-steps", str(STEPS), "--log-every", "2"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = server.client()
        deadline = time.monotonic() + 240
        while True:  # until the step's run has curve points: training is under way and tracked
            assert time.monotonic() < deadline and proc.poll() is None
            experiment = client.get_experiment_by_name("trainflow")
            runs = client.search_runs([experiment.experiment_id]) if experiment else []
            seen = client.get_metric_history(runs[0].info.run_id, "train/loss") if runs else []
            if seen:
                break
            time.sleep(0.2)
        os.killpg(server.proc.pid, signal.SIGKILL)
        # a training that waited on the dead server would hang here: communicate's limit is that test, not a clock
        # bound on the rest of training (which takes minutes on a loaded machine)
        output, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop_mlflow(server)
    assert proc.returncode == 0, output
    assert max(point.step for point in seen) < STEPS, "training ended before the server was killed"
    assert f"trained {STEPS} steps" in output
    assert "keeping them to send later" in output  # one warning, not one per batch
    assert output.count("keeping them to send later") == 1  # buffered, never waited on batch by batch
