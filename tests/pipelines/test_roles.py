"""Steps say what they provide: a served model and its ports, TensorBoard, a train dir, kinds of outputs."""

from __future__ import annotations

import json

import pytest
import yaml

from trainflow.pipelines import Command, Param, Pipeline, PipelineError, Port, Service, Train, output, param
from trainflow.pipelines.builtin import MODEL_DEPLOY, MODEL_TRAIN
from trainflow.pipelines.roles import provided
from trainflow.pipelines.serial import from_dict, to_dict


def served(**fields: object) -> Pipeline:
    step = Service(name="serve", argv=("server",), ports=(Port("api", 80, "http"), Port("rpc", 81, "grpc")), **fields)  # type: ignore[arg-type]
    return Pipeline(name="p", params=(Param("name", "m"),), steps=(step,))


def test_the_built_in_model_server_says_it_serves_a_model_its_ports_and_name() -> None:
    for pipeline in (MODEL_TRAIN, MODEL_DEPLOY):
        step = next(s for s in pipeline.steps if s.name == "serve-model")
        assert provided(step) == {
            "kinds": {"model-version": "model-version"},
            "serves": "model",
            "ports": {"rest": "rest", "grpc": "grpc"},
            "model_name": "{{params.model-name}}",
        }


def test_the_built_in_training_says_where_it_leaves_its_train_dir_and_tensorboard_what_it_serves() -> None:
    steps = {s.name: provided(s) for s in MODEL_TRAIN.steps}
    assert steps["train-model"] == {"train_dir": "{{steps.get-workflow-info.outputs.train-dir}}"}
    assert steps["tensorboard"] == {"serves": "tensorboard", "ports": {"http": "http"}}
    assert steps["download-dataset"] == {"kinds": {"dataset-path": "dataset"}}
    assert steps["get-workflow-info"] == {}


def test_a_model_server_names_its_rest_and_grpc_ports_by_protocol() -> None:
    pipeline = served(serves="model", model_name=param("name")).validate()
    assert provided(pipeline.steps[0])["ports"] == {"rest": "api", "grpc": "rpc"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"serves": "model"}, "say which name with model_name"),
        ({"serves": "printer"}, "serves 'printer': use one of model, tensorboard"),
        ({"serves": "model", "model_name": param("nope")}, "uses parameter 'nope'"),
        ({"kinds": {"x": "metric"}}, "gives output 'x' a kind but does not declare it"),
        ({"outputs": ("x",), "kinds": {"x": "size"}}, "output 'x' has kind 'size'"),
    ],
)
def test_a_declaration_no_consumer_could_use_is_refused_naming_the_step(fields: dict, message: str) -> None:
    with pytest.raises(PipelineError, match="step serve: ") as caught:
        served(**fields).validate()
    assert message in caught.value.message


def test_a_model_server_without_an_http_or_grpc_port_is_refused() -> None:
    step = Service(name="serve", argv=("s",), ports=(Port("raw", 80, "tcp"),), serves="model", model_name="m")
    with pytest.raises(PipelineError, match="no port of protocol http"):
        Pipeline(name="p", params=(), steps=(step,)).validate()


def test_a_train_dir_reads_only_declared_outputs() -> None:
    paths = Command(name="paths", argv=("p",), outputs=("dir",))
    bad = Train(name="fit", argv=("t",), train_dir=output("paths", "missing"))
    with pytest.raises(PipelineError, match="reads output 'missing' of paths"):
        Pipeline(name="p", params=(), steps=(paths, bad)).validate()


def test_the_new_fields_round_trip_through_yaml_and_belong_to_their_kind() -> None:
    pipeline = Pipeline(
        name="p",
        params=(Param("name", "m"),),
        steps=(
            Command(name="paths", argv=("p",), outputs=("dir", "data"), kinds={"data": "dataset"}),
            Train(name="fit", argv=("t",), train_dir=output("paths", "dir")),
            Service(name="serve", argv=("s",), ports=(Port("rest", 1),), serves="model", model_name=param("name")),
        ),
    ).validate()
    data = json.loads(json.dumps(to_dict(pipeline)))
    assert from_dict(yaml.safe_load(yaml.safe_dump(data)), check=True) == pipeline
    data["steps"][1]["serves"] = "model"
    with pytest.raises(PipelineError, match="step fit: 'serves' belongs to a service step"):
        from_dict(data)
    data["steps"][1].pop("serves")
    data["steps"][0]["train_dir"] = "/x"
    with pytest.raises(PipelineError, match="step paths: 'train_dir' belongs to a train step"):
        from_dict(data)
