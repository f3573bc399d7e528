"""`trainflow compile` output for the default parameters, compared with committed golden files.

Regenerate after an intended change: TRAINFLOW_UPDATE_GOLDEN=1 pytest tests/workflows/kubernetes/test_k8s_golden.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainflow.workflows import MODEL_DEPLOY, MODEL_TRAIN
from trainflow.workflows.kubernetes import compile_pipeline, compile_rbac, to_yaml

GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "model-train-pytorchjob.yaml": lambda: compile_pipeline(MODEL_TRAIN, {}, "pytorchjob"),
    "model-train-tfjob.yaml": lambda: compile_pipeline(MODEL_TRAIN, {}, "tfjob"),
    "model-deploy.yaml": lambda: compile_pipeline(MODEL_DEPLOY, {"workflow": "myjob"}),
    "rbac.yaml": lambda: compile_rbac("default"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_default_compile_output_matches_the_golden_file(name: str) -> None:
    text = to_yaml(CASES[name]())
    path = GOLDEN / name
    if os.environ.get("TRAINFLOW_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with TRAINFLOW_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{name} changed: review the diff, then regenerate with TRAINFLOW_UPDATE_GOLDEN=1"


def test_compile_command_prints_the_golden_yaml_and_writes_files(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", "compile", "model-train", "--job-kind", "tfjob"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == (GOLDEN / "model-train-tfjob.yaml").read_text()
    target = tmp_path / "rbac.yaml"
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", "compile", "rbac", "-o", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout == ""
    assert target.read_text() == (GOLDEN / "rbac.yaml").read_text()
    assert target.read_text().count("\n---\n") == 2  # three documents


def test_compile_with_a_bad_parameter_prints_one_error_line_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "wf.yaml"
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", "compile", "model-train", "-p", "tf-worker=many", "-o", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == ["error: parameter tf-worker must be a whole number, not 'many'"]
    assert not target.exists()
