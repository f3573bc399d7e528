"""Fan-out over an earlier step's output, parallelism and exit steps in the spec: what validate takes and refuses."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from tests.commands import trainflow
from trainflow.pipelines import ITEM, Call, Command, Param, Pipeline, PipelineError, output, param
from trainflow.pipelines.notify import Notify
from trainflow.pipelines.refs import OutputRef, workflow
from trainflow.pipelines.serial import from_dict, to_dict


def listing(**fan_out: object) -> Pipeline:
    return Pipeline(
        name="sweep",
        params=(Param("n", 3, type="int"),),
        steps=(
            Call(name="items", function="m:list_items", inputs={"n": param("n")}, outputs=("list",)),
            Call(name="fit", function="m:fit", outputs=("loss",), **fan_out),  # type: ignore[arg-type]
        ),
    )


def test_a_fan_out_over_a_step_output_is_written_without_a_type_error() -> None:
    pipeline = listing(for_each=output("items", "list"), inputs={"lr": ITEM["lr"]}).validate()
    fit = pipeline.step("fit")
    assert fit.for_each == OutputRef("items", "list")
    assert fit.upstream() == ("items",)  # it runs after the step whose output it fans out over
    assert "{{item.lr}}" in fit.command


def test_a_placeholder_string_is_a_reference_to_the_list_not_the_characters_to_fan_out_over() -> None:
    fit = listing(for_each="{{steps.items.outputs.list}}", inputs={"x": ITEM}).validate().step("fit")
    assert fit.for_each == OutputRef("items", "list")


@pytest.mark.parametrize(
    ("fan_out", "refused"),
    [
        ({"for_each": "{{steps.nope.outputs.list}}"}, "reads an output of 'nope', which is not a step"),
        ({"for_each": "{{steps.items.outputs.rows}}"}, "reads output 'rows' of items, which declares only list"),
        ({"for_each": "{{steps.fit.outputs.loss}}"}, "reads its own output"),
        ({"for_each": "{{params.missing}}"}, "uses parameter 'missing', which the pipeline does not declare"),
        ({"for_each": [1, 2], "inputs": {"lr": ITEM["lr"]}}, "item '1' is not an object with a field 'lr'"),
        ({"parallelism": 2}, "parallelism caps a fan-out: give for_each as well"),
        ({"for_each": [1, 2], "parallelism": 0}, "parallelism 0: give a whole number >= 1"),
        ({"inputs": {"s": workflow("status")}}, "uses {{workflow.status}}, which only an exit step has"),
    ],
)
def test_validate_refuses_a_fan_out_it_cannot_resolve_with_one_line(fan_out: dict, refused: str) -> None:
    with pytest.raises(PipelineError, match="^step fit: ") as error:
        listing(**fan_out).validate()
    assert refused in error.value.message and "\n" not in error.value.message


@pytest.mark.parametrize("value", ["a,b", "{{steps.items}}", 3, {"lr": 1}])
def test_a_for_each_that_is_neither_a_list_nor_a_reference_is_refused_when_written(value: object) -> None:
    with pytest.raises(PipelineError, match="is neither a list nor a reference to one"):
        Call(name="fit", function="m:fit", for_each=value)  # type: ignore[arg-type]


def test_exit_steps_read_the_outcome_but_no_step_s_outputs() -> None:
    base = listing(for_each=output("items", "list"))
    reads_output = Command(name="report", argv=("echo", output("items", "list")))
    with pytest.raises(PipelineError, match="step report: an exit step reads no other step's outputs"):
        Pipeline(name="p", params=base.params, steps=base.steps, on_exit=(reads_output,)).validate()
    fans_out = Command(name="report", argv=("echo", ITEM), for_each=["a"])
    with pytest.raises(PipelineError, match="an exit step is one command, call or notify that runs once"):
        Pipeline(name="p", params=base.params, steps=base.steps, on_exit=(fans_out,)).validate()
    same_name = Command(name="fit", argv=("echo",))
    with pytest.raises(PipelineError, match="two steps are named fit"):
        Pipeline(name="p", params=base.params, steps=base.steps, on_exit=(same_name,)).validate()


def test_the_yaml_form_keeps_fan_out_parallelism_and_exit_steps() -> None:
    base = listing(for_each=output("items", "list"), parallelism=4, inputs={"lr": ITEM["lr"]})
    exits = (
        Command(name="report", argv=("echo", workflow("status"), "{{workflow.failed_step}}")),
        Notify(url_env="SLACK_WEBHOOK", url_secret=("slack", "url"), on=("Failed", "Succeeded")),
    )
    pipeline = Pipeline(name="p", params=base.params, steps=base.steps, parallelism=8, on_exit=exits).validate()
    assert from_dict(to_dict(pipeline)) == pipeline


@pytest.mark.parametrize(
    ("notify", "refused"),
    [
        ({}, "give the webhook as url=, url_env= (a variable) or url_secret=(NAME, KEY)"),
        ({"url_env": "not a name"}, "url_env 'not a name' is not an environment variable name"),
        ({"url_env": "HOOK", "on": ("Done",)}, "on ['Done']: use some of Succeeded, Failed, Error"),
        ({"url": "{{params.hook}}"}, "url is a literal URL: use url_env or url_secret"),
    ],
)
def test_a_notify_step_says_what_it_lacks(notify: dict, refused: str) -> None:
    with pytest.raises(PipelineError, match="^step notify: ") as error:
        Notify(**notify)
    assert refused in error.value.message


def test_pipeline_validate_refuses_an_unresolvable_for_each_in_yaml_with_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        dedent(
            """
            name: sweep
            steps:
              - {name: items, kind: command, argv: [echo], outputs: [list]}
              - {name: fit, kind: command, argv: [echo, "{{item.lr}}"], for_each: "{{steps.itms.outputs.list}}"}
            """
        )
    )
    out = trainflow("pipeline", "validate", str(path))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: {path}: step fit: reads an output of 'itms', which is not a step: its steps are items, fit"
    ]
    path.write_text(path.read_text().replace("itms", "items"))
    out = trainflow("pipeline", "validate", str(path))
    assert out.returncode == 0, out.stderr
