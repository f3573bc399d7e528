"""examples/gated: model-train extended with an evaluate step that gates serving on accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.commands import trainflow
from tests.pipelines.test_user_pipelines import submitted_name
from tests.workflows.kubernetes.conftest import SCHEMAS, schema_errors
from tests.workflows.kubernetes.test_k8s_manifests import all_schema_errors
from trainflow.pipelines.loading import load_pipeline
from trainflow.workflows.kubernetes import compile_pipeline, problems

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_the_gated_pipeline_compiles_for_both_job_kinds(job_kind: str) -> None:
    if not SCHEMAS.is_dir():
        pytest.skip(f"schemas not found at {SCHEMAS}")
    [workflow] = compile_pipeline(
        load_pipeline(str(ROOT / "examples" / "gated" / "pipeline.py")), {"job-name": "gated"}, job_kind
    )
    assert all_schema_errors(workflow, schema_errors) == [] and problems(workflow) == []
    tasks: dict[str, Any] = {t["name"]: t for t in workflow["spec"]["templates"][0]["dag"]["tasks"]}
    assert (
        "asFloat(tasks['evaluate'].outputs.parameters['accuracy']) >= asFloat(workflow.parameters['min-accuracy'])"
        in tasks["serve-model"]["when"]
    )


@pytest.mark.slow
def test_a_model_below_the_gate_is_trained_and_exported_but_not_served(mnist_dir: Path) -> None:
    try:
        name = submitted_name(
            trainflow(
                "submit",
                "examples/gated/pipeline.py",
                "-p",
                "job-name=gated-low",
                "-p",
                f"s3-data-url={mnist_dir}",
                "-p",
                "model=mlp",
                "-p",
                "model-train-steps=20",
                "-p",
                "min-accuracy=0.999",
                "--wait",
                cwd=ROOT,
                timeout=300,
            )
        )
        steps = {s["name"]: s for s in json.loads(trainflow("get", name, "-o", "json").stdout)["steps"]}
        assert steps["export-model"]["status"] == "Succeeded"
        assert 0.1 < steps["evaluate"]["outputs"]["accuracy"] < 0.999 and steps["evaluate"]["outputs"]["steps"] == 20
        assert steps["serve-model"]["status"] == "Skipped"
    finally:
        trainflow("delete", "--all")
