"""The pipeline API as data: the built-in pipelines round-trip through the YAML form, conditions, parameters."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from trainflow.cli.main import cli
from trainflow.pipelines import Command, Param, Pipeline, PipelineError, parse_condition
from trainflow.pipelines.builtin import PIPELINES
from trainflow.pipelines.programs import STEP_PROGRAMS
from trainflow.pipelines.refs import ParamRef
from trainflow.pipelines.serial import from_dict, to_dict


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_the_built_in_pipelines_are_plain_data_that_round_trips_through_yaml(name: str) -> None:
    text = yaml.safe_dump(to_dict(PIPELINES[name]))
    assert from_dict(yaml.safe_load(text)).validate() == PIPELINES[name]


def test_a_command_naming_a_step_program_the_cli_lacks_is_refused_up_front() -> None:
    pipe = Pipeline(name="typo", params=(), steps=(Command(name="train", argv=("trainflow", "step", "train-modle")),))
    with pytest.raises(PipelineError, match="step train: 'trainflow step train-modle' is not a step program"):
        pipe.validate()


def test_the_step_group_is_the_program_table() -> None:
    out = subprocess.run([sys.executable, "-m", "trainflow", "step", "--help"], capture_output=True, text=True)
    listed = {line.split()[0] for line in out.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(STEP_PROGRAMS)


def test_every_trainflow_step_a_built_in_pipeline_runs_is_a_step_command() -> None:
    used = {s.command[2] for p in PIPELINES.values() for s in p.steps if s.command[:2] == ("trainflow", "step")}
    assert used <= set(STEP_PROGRAMS)
    for name in sorted(used):  # in this process: the step group is the CLI's (the test above runs it as a program)
        out = CliRunner().invoke(cli, ["step", name, "--help"], prog_name="trainflow")
        assert out.exit_code == 0 and "--outputs" in out.output, name


@pytest.mark.parametrize(
    ("text", "values", "holds"),
    [
        ("evaluate.accuracy >= 0.97", {"evaluate.accuracy": "0.98"}, True),
        ("evaluate.accuracy >= 0.97", {"evaluate.accuracy": "0.5"}, False),
        ("params.serve == true and train.loss < 1", {"params.serve": "true", "train.loss": "0.5"}, True),
        ("params.serve == true and train.loss < 1", {"params.serve": "false", "train.loss": "0.5"}, False),
        ("params.serve or params.force", {"params.serve": "false", "params.force": "true"}, True),
        ("params.mode == 'fast'", {"params.mode": "fast"}, True),
        ("params.n != 10", {"params.n": "10.0"}, False),
    ],
)
def test_conditions_compare_numbers_as_numbers_and_text_as_text(text: str, values: dict[str, str], holds: bool) -> None:
    def resolve(ref: object) -> str:
        key = f"params.{ref.name}" if isinstance(ref, ParamRef) else f"{ref.step}.{ref.key}"  # type: ignore[attr-defined]
        return values[key]

    assert parse_condition(text).evaluate(resolve) is holds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "an empty condition"),
        ("accuracy >= 0.9", "'accuracy' is neither params.NAME, STEP.OUTPUT"),
        ("a.b >= ", "ends after '>='"),
        ("a.b >= 1 and", "ends with 'and'"),
        ("a.b >= 1 c.d", "expected 'and' or 'or'"),
    ],
)
def test_a_malformed_condition_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        parse_condition(text)


@pytest.mark.parametrize(
    ("param", "raw", "parsed"),
    [
        (Param("n", 1, type="int"), "42", "42"),
        (Param("lr", 0.1, type="float"), "1e-2", "0.01"),
        (Param("on", True, type="bool"), "yes", "true"),
        (Param("mode", "a", type="choice", choices=("a", "b")), "b", "b"),
    ],
)
def test_parameters_parse_to_canonical_text(param: Param, raw: str, parsed: str) -> None:
    assert param.parse(raw) == parsed


@pytest.mark.parametrize(
    ("param", "raw", "message"),
    [
        (Param("n", 1, type="int"), "1.5", "must be a whole number"),
        (Param("lr", 0.1, type="float"), "nan", "must be a finite number"),
        (Param("lr", 0.1, type="float", minimum=0), "-1", "must be at least 0"),
        (Param("mode", "a", type="choice", choices=("a", "b")), "c", "must be one of a, b"),
    ],
)
def test_bad_parameter_values_are_refused(param: Param, raw: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        param.parse(raw)


def test_a_declaration_error_names_what_to_fix() -> None:
    bad = Pipeline(name="p", params=(Param("n", "x", type="int"),), steps=(Command(name="a", argv=("true",)),))
    with pytest.raises(PipelineError, match="the default of parameter n must be a whole number"):
        bad.validate()
    required = Pipeline(name="p", params=(Param("n", None),), steps=(Command(name="a", argv=("true",)),))
    with pytest.raises(PipelineError, match="p needs -p n=VALUE"):
        required.resolve({})
    typo = Pipeline(name="p", params=(), steps=(Command(name="a", argv=("echo", "{{param.x}}")),))
    with pytest.raises(PipelineError, match=r"step a: unknown placeholder \{\{param.x\}\}"):
        typo.validate()
