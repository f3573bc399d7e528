"""Which models training accepts, and the one clear line it gives for those it cannot use."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainflow.training import ModelSpec, TrainingError, build_model, check_model

USER_MODELS = """
import torch

def tiny(hidden_units=8):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, hidden_units), torch.nn.Linear(hidden_units, 10))

def fixed():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))

def not_a_module():
    return "a string"

def wrong_outputs():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 3))

def shaped(input_shape, num_classes, hidden_units=4):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(input_shape[0], num_classes))

def broken():
    raise ValueError("no weights for you")

NOT_CALLABLE = 42
"""


@pytest.fixture
def user_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "my_models.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_models"


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_builtin_models_map_images_to_ten_logits(name: str) -> None:
    model = check_model(ModelSpec(name, 100))
    assert model(torch.rand(5, 1, 28, 28)).shape == (5, 10)


def test_mlp_is_the_examples_one_hidden_layer_of_hidden_units() -> None:
    linear = [m for m in build_model(ModelSpec("mlp", 64)).modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(784, 64), (64, 10)]


def test_user_factory_gets_hidden_units_when_it_takes_them(user_models: str) -> None:
    model = check_model(ModelSpec(f"{user_models}:tiny", 12))
    assert model[1].out_features == 12
    assert check_model(ModelSpec(f"{user_models}:fixed", 12))(torch.rand(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize(
    ("name", "shape", "classes"),
    [
        ("cnn", (1, 8, 8), 10),
        ("cnn", (3, 32, 32), 4),
        ("cnn", (3, 96, 64), 2),
        ("mlp", (13,), 3),
        ("mlp", (3, 8, 8), 5),
    ],
)
def test_builtin_models_adapt_to_the_datasets_shape_and_classes(
    name: str, shape: tuple[int, ...], classes: int
) -> None:
    model = check_model(ModelSpec(name, 16, shape, classes))
    assert model(torch.rand(3, *shape)).shape == (3, classes)


def test_cnn_on_mnist_keeps_its_layers_so_old_checkpoints_still_load() -> None:
    keys = set(build_model(ModelSpec("cnn", 100)).state_dict())
    assert keys == {f"{i}.{p}" for i in (0, 3, 7, 9) for p in ("weight", "bias")}


def test_cnn_on_feature_vectors_says_to_use_the_mlp() -> None:
    with pytest.raises(TrainingError, match="use --model mlp for feature vectors"):
        check_model(ModelSpec("cnn", 16, (13,), 3))


def test_user_factory_gets_the_input_shape_and_class_count(user_models: str) -> None:
    model = check_model(ModelSpec(f"{user_models}:shaped", 12, (7,), 3))
    assert model(torch.rand(2, 7)).shape == (2, 3)


def test_spec_written_before_shapes_were_stored_reads_as_mnist() -> None:
    assert ModelSpec.from_dict({"name": "mlp", "hidden_units": 16}) == ModelSpec("mlp", 16, (1, 28, 28), 10)


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("not_a_module", "returned a str, not a torch.nn.Module"),
        ("wrong_outputs", r"returns \(2, 3\) for a batch of 2 examples: expected logits of shape \(2, 10\)"),
        ("broken", "the factory failed: ValueError: no weights for you"),
        ("NOT_CALLABLE", "is a int, not a callable"),
        ("missing", "module 'my_models' has no attribute 'missing'"),
    ],
)
def test_unusable_factory_is_one_clear_permanent_error(user_models: str, attr: str, message: str) -> None:
    with pytest.raises(TrainingError, match=message) as info:
        check_model(ModelSpec(f"{user_models}:{attr}"))
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_module_that_does_not_import_names_it() -> None:
    with pytest.raises(TrainingError, match="cannot import module 'no_such_pkg.models'") as info:
        check_model(ModelSpec("no_such_pkg.models:build"))
    assert info.value.exit_code == 2


def test_name_that_is_neither_builtin_nor_module_attr_says_what_is_accepted() -> None:
    with pytest.raises(TrainingError, match="neither cnn nor mlp nor module:attr"):
        check_model(ModelSpec("resnet"))
