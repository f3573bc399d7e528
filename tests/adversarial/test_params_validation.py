"""Workflow parameters from `-p`: non-finite numbers, hostile names and factories are refused before anything runs."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time

import pytest

from trainflow.cli.watch import summary_lines
from trainflow.workflows import MODEL_DEPLOY, MODEL_TRAIN, WorkflowError, resolve_params
from trainflow.workflows.backend import StepInfo, WorkflowInfo


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"model-learning-rate": "inf"}, "finite number greater than 0"),
        ({"model-learning-rate": "-inf"}, "finite number greater than 0"),
        ({"model-learning-rate": "nan"}, "finite number greater than 0"),
        ({"model-learning-rate": "1e999"}, "finite number greater than 0"),
        ({"model-learning-rate": "0"}, "finite number greater than 0"),
        ({"model-batch-size": "-5"}, "at least 1"),
        ({"model-hidden-units": "0"}, "at least 1"),
        ({"tf-worker": "1.5"}, "whole number"),
        ({"model-name": "x; touch /tmp/pwned"}, "is not valid"),
        ({"model-name": "../mnist"}, "is not valid"),
        ({"model-name": "mnist/v1"}, "is not valid"),
        ({"model-name": ""}, "is not valid"),
        ({"model-name": "m" * 129}, "up to 128"),
        ({"model": "os:system; rm -rf /"}, "neither auto, cnn, mlp nor module:attr"),
        ({"model": "../evil:build"}, "neither auto, cnn, mlp nor module:attr"),
        ({"namespace": "Kube_System"}, "not a DNS-1123 label"),
    ],
)
def test_hostile_or_nonsense_parameters_are_refused(given: dict[str, str], says: str) -> None:
    with pytest.raises(WorkflowError, match=says):
        resolve_params(MODEL_TRAIN, given)


def test_names_as_tf_serving_takes_them_are_accepted() -> None:
    values = resolve_params(
        MODEL_TRAIN, {"model-name": "Mnist_v2.1-b", "model": "my_pkg.models:build", "model-train-steps": "1_000"}
    )
    assert values["model-name"] == "Mnist_v2.1-b" and values["model-train-steps"] == "1000"


def test_a_deploy_name_stays_a_dns_label_with_its_suffix() -> None:
    with pytest.raises(WorkflowError, match="not a DNS-1123 label"):
        resolve_params(MODEL_DEPLOY, {"workflow": "a" * 60})


def test_submit_with_an_infinite_learning_rate_is_one_line_and_creates_no_workflow() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainflow",
            "submit",
            "model-train",
            "-p",
            "job-name=inf-lr",
            "-p",
            "model-learning-rate=inf",
            "-p",
            "s3-data-url=/nonexistent",
            "-p",
            "model-serving=false",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert 1 <= run.returncode <= 127 and len(errors) == 1 and "model-learning-rate" in errors[0], run.stderr
        listed = subprocess.run([sys.executable, "-m", "trainflow", "list"], capture_output=True, text=True, timeout=60)
        assert "inf-lr" not in listed.stdout
    finally:
        subprocess.run([sys.executable, "-m", "trainflow", "delete", "inf-lr"], capture_output=True, timeout=60)


def served(model_name: str) -> WorkflowInfo:
    steps = [
        StepInfo(
            "download-dataset",
            "Succeeded",
            outputs={"dataset-path": "/data/my mnist"},
            provides={"kinds": {"dataset-path": "dataset"}},
        ),
        StepInfo(
            "serve-model",
            "Succeeded",
            service=True,
            provides={
                "serves": "model",
                "ports": {"rest": "rest", "grpc": "grpc"},
                "model_name": "{{params.model-name}}",
            },
            addresses={"rest": "127.0.0.1:8501", "grpc": "127.0.0.1:9000"},
        ),
    ]
    return WorkflowInfo("job", "model-train", "Succeeded", {"model-name": model_name}, time.time(), steps=steps)


def try_line(info: WorkflowInfo) -> list[str]:
    line = next(line for line in summary_lines(info) if line.startswith("Try:"))
    return shlex.split(line.removeprefix("Try:"))


def test_the_try_line_names_a_model_that_is_not_the_default() -> None:
    argv = try_line(served("digits"))
    assert argv[argv.index("--model-name") + 1] == "digits"
    assert argv[argv.index("--data-dir") + 1] == "/data/my mnist"


def test_the_try_line_for_the_default_model_stays_short() -> None:
    assert "--model-name" not in try_line(served("mnist"))
