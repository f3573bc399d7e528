"""A study's settings are checked before anything runs: one `error:` line, exit 2, no run recorded."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest
import yaml

from tests.commands import trainflow
from trainflow.pipelines import PipelineError
from trainflow.pipelines.builtin import PIPELINES
from trainflow.pipelines.search_space import parse_search_space
from trainflow.pipelines.serial import from_dict, to_dict

SPACE = '{"model-learning-rate": {"type": "float", "low": 0.0001, "high": 0.1, "log": true}}'


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["search-space={}"], "at least one parameter"),
        (['search-space={"model-learning-rate": {"type": "float", "low": 0.1, "high": 0.01}}'], "empty or inverted"),
        (['search-space={"model-hidden-units": {"type": "int", "low": 64, "high": 64}}'], "empty or inverted"),
        (['search-space={"model-optimizer": {"type": "choice", "values": []}}'], "a choice with no values"),
        (['search-space={"dropout": {"type": "float", "low": 0.1, "high": 0.5}}'], "does not take parameter 'dropout'"),
        (["objective=f1"], "objective 'f1' is never reported by trial step train-model"),
        (["max-trials=2", "parallel-trials=3"], "parallel-trials 3 is above max-trials 2"),
        (["algorithm=bayes"], "parameter algorithm"),
        (
            ['search-space={"model-learning-rate": {"type": "float", "low": 0.001, "high": 0.1}}', "algorithm=grid"],
            "no grid",
        ),
        (["time-budget=soon"], "time-budget 'soon' must be a number of seconds"),
        (
            ['search-space={"model-optimizer": {"type": "choice", "values": ["adam", "--export-base=/x"]}}'],
            "must be one of",
        ),
        (['search-space={"model-learning-rate": {"type": "float", "low": 0.0, "high": 0.1}}'], "greater than 0"),
        (
            ['search-space={"aws-endpoint-url": {"type": "choice", "values": ["http://a", "http://b"]}}'],
            "has type endpoint: tune numbers or choices",
        ),
    ],
)
def test_bad_study_settings_are_one_error_line_and_nothing_runs(params: list[str], message: str) -> None:
    given = [t for p in params for t in ("-p", p)]
    done = trainflow("submit", "model-tune", "-p", "s3-data-url=/nowhere", *given)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error:"), done.stderr
    assert message in done.stderr
    assert "no workflows" in trainflow("list").stdout


def test_a_tune_step_in_yaml_takes_its_ranges_as_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text(
        dedent(
            """
            name: yaml-study
            params:
              - {name: lr, default: 0.01, type: float}
            steps:
              - name: study
                kind: tune
                max_trials: 4
                early_stopping: median
                search_space:
                  lr: {type: float, low: 0.001, high: 0.1, log: true}
                trial:
                  name: fit
                  argv: [trainflow, step, call, mymod:fit, --input, lr, "{{params.lr}}"]
                  outputs: [accuracy]
            """
        )
    )
    done = trainflow("pipeline", "validate", str(path))
    assert done.returncode == 0, done.stderr
    study = from_dict(yaml.safe_load(path.read_text())).validate()
    assert json.loads(str(study.steps[0].search_space)) == {
        "lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}
    }


def test_model_tune_round_trips_through_its_stored_form() -> None:
    pipeline = PIPELINES["model-tune"]
    assert from_dict(yaml.safe_load(yaml.safe_dump(to_dict(pipeline)))).validate() == pipeline


def test_model_tune_trials_are_evaluated_ten_times_by_default() -> None:
    defaults = {p.name: p.default for p in PIPELINES["model-tune"].params}
    assert int(defaults["model-train-steps"]) / int(defaults["model-eval-every"]) == 10


def test_a_search_space_is_checked_whole() -> None:
    [dim] = parse_search_space(SPACE)
    assert (dim.low, dim.high, dim.log) == (0.0001, 0.1, True)
    for bad, message in [
        ('{"a": {"type": "float", "low": 0, "high": 1, "log": true}}', "log scale"),
        ('{"a": {"type": "int", "low": 1.5, "high": 3}}', "not a whole number"),
        ('{"a": {"type": "choice", "values": ["x", "x"]}}', "lists a value twice"),
        ('{"a": {"type": "float", "low": 0, "high": 1, "steps": 3}}', "does not take 'steps'"),
        ("[1, 2]", "must be a JSON object"),
        ('{"a": {"type": "float", "low": 0, "high": NaN}}', "finite number"),
    ]:
        with pytest.raises(PipelineError, match=message):
            parse_search_space(bad)
