"""`trainflow compile` output for the default parameters, compared with committed golden files.

Regenerate after an intended change: TRAINFLOW_UPDATE_GOLDEN=1 pytest tests/workflows/kubernetes/test_k8s_golden.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainflow.pipelines.loading import load_pipeline
from trainflow.workflows import MODEL_DEPLOY, MODEL_TRAIN
from trainflow.workflows.kubernetes import compile_pipeline, compile_rbac, to_yaml

GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = Path(__file__).parents[3] / "examples"
# The examples' values on a cluster: their data and artifacts in a bucket every pod reaches.
EXAMPLE_VALUES = {
    "own-model": {"data": "s3://datasets/wine", "model-name": "wine"},
    "sweep": {"artifacts": "s3://runs/sweep"},
}


def example(name: str, form: str, job_kind: str) -> dict:
    """An example pipeline (its .py or .yaml form) compiled with its cluster values."""
    return compile_pipeline(load_pipeline(str(EXAMPLES / name / f"pipeline.{form}")), EXAMPLE_VALUES[name], job_kind)


CASES = {
    "model-train-pytorchjob.yaml": lambda: compile_pipeline(MODEL_TRAIN, {}, "pytorchjob"),
    "model-train-tfjob.yaml": lambda: compile_pipeline(MODEL_TRAIN, {}, "tfjob"),
    "model-train-trainjob.yaml": lambda: compile_pipeline(MODEL_TRAIN, {}, "trainjob"),
    "model-deploy.yaml": lambda: compile_pipeline(MODEL_DEPLOY, {"workflow": "myjob"}),
    "rbac.yaml": lambda: compile_rbac("default"),
    **{
        f"example-{name}-{kind}.yaml": (lambda name=name, kind=kind: example(name, "py", kind))
        for name in EXAMPLE_VALUES
        for kind in ("pytorchjob", "tfjob")
    },
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_default_compile_output_matches_the_golden_file(name: str) -> None:
    text = to_yaml(CASES[name]())
    path = GOLDEN / name
    if os.environ.get("TRAINFLOW_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with TRAINFLOW_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), f"{name} changed: review the diff, then regenerate with TRAINFLOW_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("name", sorted(EXAMPLE_VALUES))
@pytest.mark.parametrize("kind", ["pytorchjob", "tfjob"])
def test_an_examples_yaml_form_compiles_to_its_python_forms_golden_file(name: str, kind: str) -> None:
    assert to_yaml(example(name, "yaml", kind)) == (GOLDEN / f"example-{name}-{kind}.yaml").read_text()


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
