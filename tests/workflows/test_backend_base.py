"""Every backend prepares a run the same way (the `Backend` base) and can show what it would start (`dryrun`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.commands import trainflow
from tests.workflows.kubernetes.test_k8s_golden import EXAMPLE_VALUES, EXAMPLES, GOLDEN
from trainflow.pipelines.loading import load_pipeline
from trainflow.workflows import MODEL_TRAIN
from trainflow.workflows.backend import Backend
from trainflow.workflows.backends import BACKENDS, COMPILER, DEFAULT, Where, open_backend
from trainflow.workflows.kubernetes import to_yaml


def backend(kind: str, home: Path, **where: str) -> Backend:
    return open_backend(kind, Where(home, **where))


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_the_cluster_dry_run_of_model_train_is_what_compile_prints(trainflow_home: Path, job_kind: str) -> None:
    dry = to_yaml(backend(COMPILER, trainflow_home, job_kind=job_kind).dryrun(MODEL_TRAIN, {}))
    printed = trainflow("compile", "model-train", "--job-kind", job_kind)
    assert printed.returncode == 0, printed.stderr
    assert dry == printed.stdout == (GOLDEN / f"model-train-{job_kind}.yaml").read_text()


def test_a_user_pipelines_cluster_dry_run_runs_in_the_backends_namespace(trainflow_home: Path) -> None:
    own = load_pipeline(str(EXAMPLES / "own-model" / "pipeline.py"))
    assert (
        to_yaml(backend(COMPILER, trainflow_home).dryrun(own, EXAMPLE_VALUES["own-model"]))
        == (GOLDEN / "example-own-model-pytorchjob.yaml").read_text()
    )
    # own-model declares no namespace parameter: the backend's namespace is still where its objects go
    [workflow] = backend(COMPILER, trainflow_home, namespace="ml").dryrun(own, EXAMPLE_VALUES["own-model"])
    assert workflow["metadata"]["namespace"] == "ml"
    printed = trainflow("compile", str(EXAMPLES / "own-model" / "pipeline.py"), "-n", "ml", "-p", "data=s3://d/w")
    assert printed.returncode == 0, printed.stderr
    assert "namespace: ml" in printed.stdout


def test_the_local_dry_run_of_model_train_lists_each_step_with_its_command_and_starts_nothing(
    trainflow_home: Path,
) -> None:
    local = backend(DEFAULT, trainflow_home)
    plan = local.dryrun(MODEL_TRAIN, {"job-name": "planned", "model-train-steps": "7"})
    assert plan["name"] == "planned" and plan["pipeline"] == "model-train"
    assert plan["values"]["model-train-steps"] == "7"
    steps = {s["name"]: s for s in plan["steps"]}
    assert list(steps) == [s.name for s in MODEL_TRAIN.order()]
    train = steps["train-model"]
    assert train["command"][:3] == ["trainflow", "step", "train-model"]
    assert train["command"][train["command"].index("--train-steps") + 1] == "7"
    assert "{{steps.download-dataset.outputs.dataset-path}}" in train["command"]  # known once that step ran
    assert set(train["after"]) == {"download-dataset", "get-workflow-info"}
    assert steps["tensorboard"]["service"] and not train["service"]
    assert local.list() == []


def test_both_backends_name_a_run_from_its_name_parameter_the_same_way(trainflow_home: Path) -> None:
    for kind in BACKENDS:
        assert backend(kind, trainflow_home).prepare(MODEL_TRAIN, {"job-name": "same"}).name == "same"


def test_a_bad_value_is_one_line_from_either_backend_before_anything_starts(trainflow_home: Path) -> None:
    from trainflow.workflows import WorkflowError

    for kind in BACKENDS:
        with pytest.raises(WorkflowError, match="model-learning-rate"):
            backend(kind, trainflow_home).dryrun(MODEL_TRAIN, {"model-learning-rate": "-1"})


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["tensorboard", "nope"],
            "error: workflow nope serves no TensorBoard on this machine: see `trainflow services`\n",
        ),
        (
            ["retry", "run1", "--backend", "kubernetes", "-n", "ml"],
            "error: the kubernetes backend does not retry in place: run `argo retry run1 -n ml`, or "
            "`trainflow resubmit run1 --backend kubernetes` (a new run; memoized steps are reused)\n",
        ),
    ],
)
def test_what_a_backend_cannot_do_is_one_line_through_the_cli(args: list[str], line: str) -> None:
    out = trainflow(*args)
    assert out.returncode != 0 and (out.stdout, out.stderr) == ("", line)
