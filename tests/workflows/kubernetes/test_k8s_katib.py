"""model-tune (and any pipeline with a Tune step) compiles to a Katib Experiment, valid before and after Katib.

Each compiled workflow is put through `argo_submit` (Argo's substitution) and validated: the Argo Workflow
schema, Katib's Experiment schema (kubeflow.org v1beta1), the strict checks and the credential check; then
Katib's own substitution writes a trial's job from the trial template, and that job is validated against the
PyTorchJob or TFJob schema and the strict checks too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.workflows.kubernetes.conftest import schema_errors
from tests.workflows.kubernetes.test_k8s_manifests import all_schema_errors
from tests.workflows.kubernetes.test_k8s_submit_params import argo_submit, manifests
from trainflow.pipelines import Param, Pipeline, Train, Tune, param
from trainflow.pipelines.builtin import PIPELINES
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import compile_pipeline, problems, to_yaml
from trainflow.workflows.kubernetes.katib_trials import trial_job

Validate = Callable[..., list[str]]
MODEL_TUNE = PIPELINES["model-tune"]
SPACE = {
    "model-learning-rate": {"type": "float", "low": 0.0001, "high": 0.1, "log": True},
    "model-hidden-units": {"type": "int", "low": 32, "high": 256},
    "model-optimizer": {"type": "choice", "values": ["adam", "sgd"]},
}


def submitted(job_kind: str, **given: str) -> dict[str, Any]:
    return argo_submit(to_yaml(compile_pipeline(MODEL_TUNE, {}, job_kind)), given)


def experiment(workflow: dict[str, Any]) -> dict[str, Any]:
    [found] = [m for m in manifests(workflow) if m["kind"] == "Experiment"]
    return found


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_model_tune_is_a_valid_experiment_for_both_job_kinds(validate: Validate, job_kind: str) -> None:
    workflow = submitted(job_kind, **{"max-trials": "6", "parallel-trials": "3"})
    assert all_schema_errors(workflow, validate) == []
    assert problems(workflow) == []
    exp = experiment(workflow)
    assert validate(exp) == [] and problems(exp) == []
    assert "AWS_SECRET_ACCESS_KEY\n  value" not in yaml.safe_dump(workflow)
    spec = exp["spec"]
    assert (spec["maxTrialCount"], spec["parallelTrialCount"]) == (6, 3)
    assert spec["algorithm"] == {"algorithmName": "tpe", "algorithmSettings": [{"name": "random_state", "value": "0"}]}
    assert spec["earlyStopping"]["algorithmName"] == "medianstop"
    assert spec["objective"]["objectiveMetricName"] == "accuracy" and spec["objective"]["type"] == "maximize"
    assert {p["name"]: p["parameterType"] for p in spec["parameters"]} == {
        "model-learning-rate": "double",
        "model-hidden-units": "int",
        "model-optimizer": "categorical",
    }
    assert spec["trialTemplate"]["primaryContainerName"] == {"pytorchjob": "pytorch", "tfjob": "tensorflow"}[job_kind]


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_katibs_substitution_of_the_trial_template_makes_a_valid_job(validate: Validate, job_kind: str) -> None:
    exp = experiment(submitted(job_kind))
    job = trial_job(exp, {"model-learning-rate": "0.0123", "model-hidden-units": "77", "model-optimizer": "sgd"})
    assert job["kind"] == {"pytorchjob": "PyTorchJob", "tfjob": "TFJob"}[job_kind]
    assert schema_errors(job) == [] and problems(job) == []
    replicas = job["spec"].get("pytorchReplicaSpecs") or job["spec"]["tfReplicaSpecs"]
    [container] = replicas["Worker"]["template"]["spec"]["containers"]
    assert validate(container, "Container") == []
    env = {e["name"]: e.get("value") for e in container["env"]}
    args = [env[f"TRAINFLOW_ARG_{i}"] for i in range(sum(1 for n in env if n.startswith("TRAINFLOW_ARG_")))]
    assert args[:3] == ["trainflow", "step", "train-model"]
    given = dict(zip(args[3::2], args[4::2], strict=False))
    assert (given["--learning-rate"], given["--hidden-units"], given["--optimizer"]) == ("0.0123", "77", "sgd")
    assert given["--train-dir"].endswith(f"/trials/{job['metadata']['name']}")
    assert "--export-base" not in given  # trials do not export: the best one is exported after the study
    # Katib's collector runs the command through sh -c: every argument reaches it as an environment variable
    assert container["command"] == ["sh", "-c"] and "trainflow" not in container["args"][0]


def test_the_best_trial_step_reads_the_experiments_status() -> None:
    workflow = submitted("pytorchjob")
    [create] = [t for t in workflow["spec"]["templates"] if t["name"] == "tune-model-experiment"]
    paths = {p["name"]: p["valueFrom"]["jsonPath"] for p in create["outputs"]["parameters"]}
    assert paths["assignments"] == "{.status.currentOptimalTrial.parameterAssignments}"
    best = "status.currentOptimalTrial.bestTrialName"
    assert create["resource"]["successCondition"] == f"status.completionTime, {best}"
    assert create["resource"]["failureCondition"] == f"status.completionTime, !{best}"
    [result] = [t for t in workflow["spec"]["templates"] if t["name"] == "tune-model-result"]
    assert result["container"]["command"] == ["trainflow", "step", "tune-result"]


def test_tune_result_turns_katibs_best_trial_into_the_study_outputs(tmp_path: Path) -> None:
    status = {
        "bestTrialName": "run-tune-model-x7k2m9qa",
        "parameterAssignments": [
            {"name": "model-learning-rate", "value": "0.01"},
            {"name": "model-optimizer", "value": "sgd"},
        ],
        "observation": {"metrics": [{"name": "accuracy", "latest": "0.93", "max": "0.95", "min": "0.4"}]},
    }
    out = tmp_path / "outputs.json"
    args = [
        sys.executable,
        "-m",
        "trainflow",
        "step",
        "tune-result",
        "--objective",
        "accuracy",
        "--train-dir",
        "s3://b/run",
    ]
    args += ["--best-trial-name", status["bestTrialName"], "--assignments", json.dumps(status["parameterAssignments"])]
    done = subprocess.run(
        [*args, "--observation", json.dumps(status["observation"]), "--outputs", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    outputs = json.loads(out.read_text())
    assert json.loads(outputs["best-params"]) == {"model-learning-rate": "0.01", "model-optimizer": "sgd"}
    assert outputs["best-value"] == 0.93 and outputs["best-train-dir"] == "s3://b/run/trials/run-tune-model-x7k2m9qa"
    hostile = [*args[:-2], "--best-trial-name", "../x; rm -rf /", "--assignments", "[]", "--observation", "{}"]
    refused = subprocess.run(hostile, capture_output=True, text=True)
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1 and "error:" in refused.stderr


def test_early_stopping_hyperband_is_katibs_hyperband_setting_the_training_steps() -> None:
    spec = experiment(submitted("pytorchjob"))["spec"]  # the defaults first: median stopping, no hyperband
    assert spec["algorithm"]["algorithmName"] == "tpe"
    workflow = compile_pipeline(MODEL_TUNE, {"early-stopping": "hyperband", "model-train-steps": "90"}, "pytorchjob")
    spec = experiment(argo_submit(to_yaml(workflow), {}))["spec"]
    settings = {s["name"]: s["value"] for s in spec["algorithm"]["algorithmSettings"]}
    assert spec["algorithm"]["algorithmName"] == "hyperband" and "earlyStopping" not in spec
    assert settings == {"resource_name": "model-train-steps", "eta": "3", "r_l": "90"}
    assert "model-train-steps" in [p["name"] for p in spec["parameters"]]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"time-budget": "600"}, "a time budget has no Katib equivalent"),
        (
            {"search-space": json.dumps({"model-optimizer": {"type": "choice", "values": ['adam", "x": "y']}})},
            "must be one of adam, sgd",  # refused by the parameter's own type, before Katib's check
        ),
    ],
)
def test_what_katib_cannot_take_is_refused_at_compile_in_one_line(params: dict[str, str], message: str) -> None:
    with pytest.raises(WorkflowError, match=message) as caught:
        compile_pipeline(MODEL_TUNE, params, "pytorchjob")
    assert "\n" not in str(caught.value)


def test_trainjob_is_refused_for_a_study() -> None:
    with pytest.raises(WorkflowError, match="use --job-kind pytorchjob or tfjob"):
        compile_pipeline(MODEL_TUNE, {}, "trainjob")


def test_a_choice_katib_would_splice_into_the_trial_is_refused_at_compile() -> None:
    trial = Train(
        name="fit", argv=("trainflow", "step", "call", "m:fit", "--input", "tag", param("tag")), outputs=("accuracy",)
    )
    hostile = json.dumps({"tag": {"type": "choice", "values": ["a", 'b", "privileged": true, "x": "']}})
    pipeline = Pipeline(
        name="tags",
        params=(Param("tag", "a"), Param("space", hostile, type="search-space")),
        steps=(Tune(name="study", trial=trial, search_space=param("space"), max_trials=2),),
    ).validate()
    with pytest.raises(WorkflowError, match="cannot reach a Katib trial as is") as caught:
        compile_pipeline(pipeline, {}, "pytorchjob")
    assert "\n" not in str(caught.value)
