"""A fan-out over a listing step's output on Argo: withParam, item fields, parallelism, exit steps, Notify, suspend."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.workflows.kubernetes.fake_cluster import FakeCluster
from tests.workflows.kubernetes.test_k8s_manifests import all_schema_errors
from trainflow.pipelines import ITEM, Call, Command, Param, Pipeline, Train, output, param
from trainflow.pipelines.notify import Notify
from trainflow.pipelines.refs import workflow
from trainflow.workflows import WorkflowError
from trainflow.workflows.backend import SUSPENDED
from trainflow.workflows.kubernetes import KubernetesBackend, compile_pipeline, problems

HOOK = "https://hooks.slack.com/services/T000/B000/secret-token-xyz"


def fan_out(notify: Notify | None = None) -> Pipeline:
    return Pipeline(
        name="sweep",
        params=(Param("n", 50, type="int"),),
        parallelism=8,
        steps=(
            Call(name="list", function="steps:list_items", inputs={"n": param("n")}, outputs=("items",)),
            Call(
                name="score",
                function="steps:score",
                for_each=output("list", "items"),
                parallelism=4,
                inputs={"lr": ITEM["lr"], "item": ITEM},
                outputs=("loss",),
            ),
            Call(name="best", function="steps:best", inputs={"losses": output("score", "loss")}),
            Train(
                name="fit",
                function="steps:fit",
                for_each="{{steps.list.outputs.items}}",
                parallelism=2,
                inputs={"lr": ITEM["lr"]},
                depends=("best",),
            ),
        ),
        on_exit=(
            Command(name="report", argv=("echo", workflow("status"), workflow("failed_step"))),
            notify or Notify(url_env="TEAM_HOOK", url_secret=("team-slack", "url")),
        ),
    )


def template(workflow_: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in workflow_["spec"]["templates"] if t["name"] == name)


def task(dag: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in dag["dag"]["tasks"] if t["name"] == name)


@pytest.mark.parametrize("job_kind", ["pytorchjob", "tfjob"])
def test_a_fan_out_over_a_step_output_with_parallelism_compiles_schema_valid(
    validate: Any, job_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_HOOK", HOOK)
    [compiled] = compile_pipeline(fan_out(), {}, job_kind)
    assert all_schema_errors(compiled, validate) == [] and problems(compiled) == []
    spec = compiled["spec"]
    assert spec["parallelism"] == 8
    score = task(template(compiled, "sweep"), "score")
    assert (
        score["template"] == "score-items"
        and "withParam" not in score
        and score["depends"].endswith("&& list.Succeeded")
    )
    assert {"name": "for-each-items", "value": "{{tasks.list.outputs.parameters.items}}"} in score["arguments"][
        "parameters"
    ]
    capped = template(compiled, "score-items")
    [inner] = capped["dag"]["tasks"]
    assert capped["parallelism"] == 4 and inner["withParam"] == "{{inputs.parameters.for-each-items}}"
    assert {"name": "item-lr", "value": "{{item.lr}}"} in inner["arguments"]["parameters"]
    assert capped["outputs"]["parameters"] == [
        {"name": "loss", "valueFrom": {"parameter": "{{tasks.score.outputs.parameters.loss}}"}}
    ]
    assert "{{inputs.parameters.item-lr}}" in template(compiled, "score")["container"]["args"]
    best = task(template(compiled, "sweep"), "best")
    assert best["arguments"]["parameters"] == [{"name": "loss", "value": "{{tasks.score.outputs.parameters.loss}}"}]
    assert template(compiled, "fit-items")["parallelism"] == 2


def test_exit_steps_run_beside_the_training_cleanup_and_notify_reads_its_url_from_a_secret(
    validate: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_HOOK", HOOK)
    [compiled] = compile_pipeline(fan_out(), {}, "pytorchjob")
    assert compiled["spec"]["onExit"] == "exit-handler"
    handler = template(compiled, "exit-handler")
    assert [t["name"] for t in handler["dag"]["tasks"]] == ["cleanup", "report", "notify"]
    assert all("depends" not in t for t in handler["dag"]["tasks"])  # a failing exit step stops neither other
    report = template(compiled, "report")["container"]["args"]
    assert report[0] == "{{workflow.status}}" and "workflow.failures" in report[1]
    notify = template(compiled, "notify")["container"]
    assert {"name": "TEAM_HOOK", "valueFrom": {"secretKeyRef": {"name": "team-slack", "key": "url"}}} in notify["env"]
    assert "--url-env" in notify["args"] and "TEAM_HOOK" in notify["args"]
    assert "secret-token-xyz" not in json.dumps(compiled)


def test_a_notify_url_only_in_this_machine_s_environment_cannot_reach_a_pod() -> None:
    with pytest.raises(WorkflowError, match=r"reads its webhook URL from \$TEAM_HOOK, which a pod does not have"):
        compile_pipeline(fan_out(Notify(url_env="TEAM_HOOK")), {}, "pytorchjob")


def test_suspend_and_resume_set_and_clear_argo_s_suspend_fake_k8s_api() -> None:
    cluster = FakeCluster()
    backend = KubernetesBackend(namespace="ml", job_kind="pytorchjob", api=cluster.api())
    held = Pipeline(
        name="held",
        params=(Param("job-name", "held-1"), Param("n", 3, type="int")),
        name_param="job-name",
        steps=fan_out().steps,
    )
    backend.submit(held, {})
    name = "held-1"
    cluster.workflows[("ml", name)]["status"] = {"phase": "Running", "nodes": {}}
    assert backend.suspend(name).status == SUSPENDED
    assert cluster.workflows[("ml", name)]["spec"]["suspend"] is True
    with pytest.raises(WorkflowError, match=f"workflow {name} is Suspended, not running"):
        backend.suspend(name)
    assert backend.resume(name).status == "Running"
    assert not cluster.workflows[("ml", name)]["spec"]["suspend"]
    with pytest.raises(WorkflowError, match=f"workflow {name} is Running, not suspended"):
        backend.resume(name)
