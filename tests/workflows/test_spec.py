"""The pipeline spec and its parameters: validated up front, one command per step."""

from __future__ import annotations

import pytest

from trainflow.workflows import MODEL_DEPLOY, MODEL_TRAIN, WorkflowError, parse_assignments, resolve_params
from trainflow.workflows.local.commands import step_command


def test_model_train_has_the_examples_six_steps_in_order() -> None:
    assert [s.name for s in MODEL_TRAIN.order()] == [
        "download-dataset",
        "get-workflow-info",
        "tensorboard",
        "train-model",
        "export-model",
        "serve-model",
    ]
    assert {s.name for s in MODEL_TRAIN.steps if s.service} == {"tensorboard", "serve-model"}


def test_defaults_are_the_examples() -> None:
    values = resolve_params(MODEL_TRAIN, {})
    assert (values["job-name"], values["tf-worker"], values["tf-ps"], values["model-name"]) == (
        "myjob",
        "1",
        "2",
        "mnist",
    )
    assert (values["model-hidden-units"], values["model-train-steps"], values["model-batch-size"]) == (
        "100",
        "200",
        "100",
    )
    assert (values["model-learning-rate"], values["model-serving"], values["aws-secret"]) == (
        "0.01",
        "true",
        "aws-creds",
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"job-name": "My_Job"}, "not a DNS-1123 label"),
        ({"job-name": "a" * 64}, "at most 63"),
        ({"tf-worker": "0"}, "tf-worker must be at least 1"),
        ({"model-train-steps": "many"}, "model-train-steps must be a whole number"),
        ({"model-learning-rate": "-1"}, "greater than 0"),
        ({"model-serving": "perhaps"}, "true or false"),
        ({"s3-data-url": "s3:/bucket"}, "malformed URL"),
        ({"aws-endpoint-url": "localhost:9000"}, r"must be http\(s\)://"),
    ],
)
def test_bad_parameters_are_refused_before_anything_runs(given: dict[str, str], message: str) -> None:
    with pytest.raises(WorkflowError, match=message):
        resolve_params(MODEL_TRAIN, given)


def test_unknown_parameter_lists_the_known_ones() -> None:
    with pytest.raises(WorkflowError, match=r"unknown parameter\(s\) tf-workers.*known: job-name, .*tf-worker"):
        resolve_params(MODEL_TRAIN, {"tf-workers": "2"})


def test_assignments_need_an_equals_sign() -> None:
    assert parse_assignments(["a=b=c", "x= y "]) == {"a": "b=c", "x": "y"}
    with pytest.raises(WorkflowError, match="write -p NAME=VALUE"):
        parse_assignments(["job-name"])


def test_s3_endpoint_host_becomes_an_endpoint_url() -> None:
    assert resolve_params(MODEL_TRAIN, {"s3-endpoint": "minio:9000"})["aws-endpoint-url"] == "https://minio:9000"


def test_step_command_fills_params_outputs_and_ports() -> None:
    values = resolve_params(MODEL_TRAIN, {"tf-worker": "3"})
    outputs = {
        "download-dataset": {"dataset-path": "/cache/m"},
        "get-workflow-info": {"train-dir": "s3://b/u/j", "export-base": "s3://b/e/j"},
    }
    argv = step_command(MODEL_TRAIN.step("train-model"), values, outputs)
    assert argv[:3] == ["trainflow", "step", "train-model"]
    assert argv[argv.index("--data-dir") + 1] == "/cache/m" and argv[argv.index("--workers") + 1] == "3"
    serve = step_command(
        MODEL_TRAIN.step("serve-model"), values, {"export-model": {"export-base": "/e"}}, {"rest": 8123}
    )
    assert serve[serve.index("--rest-port") + 1] == "8123" and serve[serve.index("--grpc-port") + 1] == "9000"
    assert serve[serve.index("--export-base") + 1] == "/e" and serve[serve.index("--host") + 1] == "127.0.0.1"


def test_missing_upstream_output_is_a_clear_error() -> None:
    with pytest.raises(WorkflowError, match="needs output 'train-dir' of step get-workflow-info"):
        step_command(MODEL_TRAIN.step("export-model"), resolve_params(MODEL_TRAIN, {}), {"get-workflow-info": {}})


def test_model_deploy_needs_a_workflow() -> None:
    with pytest.raises(WorkflowError, match="needs -p workflow=NAME"):
        resolve_params(MODEL_DEPLOY, {})
