"""Parameters say what they are: a declared type checks any pipeline's values, not the built-in names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.commands import trainflow
from trainflow.pipelines import Command, Param, Pipeline, PipelineError, param
from trainflow.pipelines.builtin import MODEL_TRAIN
from trainflow.pipelines.params import TYPES
from trainflow.pipelines.serial import SCHEMA_PATH, from_dict, to_dict

OWN = """
name: own-names
params:
  - {name: space, default: team-a, type: dns-label}
  - {name: served-as, default: digits, type: model-name}
  - {name: store, default: "", type: url, local_store: my-models}
  - {name: host, default: "", type: host}
  - {name: endpoint, default: "", type: endpoint, fallback: "{{params.host}}"}
  - {name: data, default: "", type: url, fallback: "https://example.com/data/"}
steps:
  - {kind: command, name: show, argv: [echo, "{{params.space}}", "{{params.store}}", "{{params.endpoint}}"]}
"""


def own_pipeline() -> Pipeline:
    import yaml

    return from_dict(yaml.safe_load(OWN)).validate()


def test_every_type_the_spec_knows_is_in_the_yaml_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    assert tuple(schema["$defs"]["param"]["properties"]["type"]["enum"]) == TYPES


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"space": "Team_A"}, "parameter space 'Team_A' is not a DNS-1123 label"),
        ({"space": "team\nx"}, "space holds a line break"),
        ({"served-as": "../x"}, "parameter served-as: model name '../x' is not valid"),
        ({"served-as": ""}, "is not valid"),
        ({"host": "minio:9000 {a: b}"}, "parameter host 'minio:9000 {a: b}' must be HOST[:PORT]"),
        ({"endpoint": "minio:9000"}, "parameter endpoint 'minio:9000' must be http(s)://"),
        ({"data": "ftp://x/y"}, "parameter data: unsupported URL scheme 'ftp://'"),
    ],
)
def test_a_user_pipelines_typed_parameters_refuse_bad_values_by_their_type(given: dict[str, str], says: str) -> None:
    with pytest.raises(PipelineError, match=re.escape(says)):
        own_pipeline().resolve(given)


def test_an_empty_value_takes_its_fallback_a_literal_or_another_parameter() -> None:
    values = own_pipeline().resolve({"host": "minio.storage:9000"})
    assert values["endpoint"] == "https://minio.storage:9000"
    assert values["data"] == "https://example.com/data/"
    assert own_pipeline().resolve({"endpoint": "http://s3:9000"})["endpoint"] == "http://s3:9000"
    assert own_pipeline().resolve({})["endpoint"] == ""


def test_a_url_parameter_is_recorded_as_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert own_pipeline().resolve({"data": "data/mine"})["data"] == str(tmp_path / "data" / "mine")


@pytest.mark.parametrize(
    ("param_", "says"),
    [
        (Param("x", "", type="endpoint", fallback=param("nope")), "falls back to 'nope'"),
        (Param("x", "", type="endpoint", fallback="{{steps.a.outputs.b}}"), "may only be a value or"),
        (Param("x", "", type="url", local_store="../up"), "local_store '../up' must be a folder name"),
        (Param("x", "bad name", type="dns-label"), "the default of parameter x 'bad name' is not a DNS-1123 label"),
        (Param("x", type="colour"), "has type 'colour'"),
    ],
)
def test_a_wrong_declaration_is_refused_when_the_pipeline_is_validated(param_: Param, says: str) -> None:
    pipe = Pipeline(name="p", params=(param_,), steps=(Command(name="a", argv=("true",)),))
    with pytest.raises(PipelineError, match=re.escape(says)):
        pipe.validate()


def test_declarations_round_trip_through_the_yaml_form() -> None:
    pipe = own_pipeline()
    assert from_dict(to_dict(pipe)).validate() == pipe
    by_name = {p.name: p for p in MODEL_TRAIN.params}
    assert by_name["aws-endpoint-url"].fallback == "{{params.s3-endpoint}}"
    assert by_name["s3-data-url"].fallback.startswith("https://")


def test_submit_refuses_a_user_pipelines_bad_typed_value_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "own.yaml"
    path.write_text(OWN)
    run = trainflow("submit", str(path), "-p", "space=Team_A")
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2 and errors == [
        "error: parameter space 'Team_A' is not a DNS-1123 label: use at most 63 lowercase letters, digits or '-', "
        "starting and ending with a letter or digit"
    ], run.stderr


def test_a_local_run_fills_an_empty_store_parameter_with_its_declared_folder() -> None:
    from trainflow.settings import trainflow_home
    from trainflow.workflows.local.backend import LocalBackend

    backend = LocalBackend(trainflow_home())
    info = backend.submit(own_pipeline(), {"host": "minio:9000"})
    assert info.params["store"] == str(trainflow_home() / "store" / "my-models")
    assert info.params["endpoint"] == "https://minio:9000"
