"""The training options any dataset takes: optimizer, learning-rate schedule, evaluation interval, precision."""

from __future__ import annotations

import math

import pytest

from trainflow.cli.train import train_command
from trainflow.pipelines.builtin import MODEL_TRAIN
from trainflow.training import TrainConfig, TrainingError
from trainflow.training.choices import LR_SCHEDULES, OPTIMIZERS, PRECISIONS


def config(**options: object) -> TrainConfig:
    return TrainConfig(data_dir="d", train_dir="t", **options)  # type: ignore[arg-type]


def test_cosine_schedule_starts_at_the_rate_and_ends_near_zero() -> None:
    cosine = config(learning_rate=0.1, train_steps=100, lr_schedule="cosine")
    rates = [cosine.learning_rate_at(step) for step in range(100)]
    assert rates[0] == 0.1 and math.isclose(rates[50], 0.05) and rates[-1] < 1e-4
    assert rates == sorted(rates, reverse=True)


def test_constant_schedule_is_the_default_and_keeps_the_rate() -> None:
    assert {config(learning_rate=0.02).learning_rate_at(step) for step in (0, 99, 199)} == {0.02}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"optimizer": "rmsprop"}, "--optimizer must be one of adam, sgd, adamw, got 'rmsprop'"),
        ({"lr_schedule": "step"}, "--lr-schedule must be one of constant, cosine, got 'step'"),
        ({"eval_every": -1}, "--eval-every must be 0"),
        ({"precision": "fp16"}, "--precision must be one of auto, fp32, bf16, got 'fp16'"),
    ],
)
def test_unknown_training_options_are_refused_in_one_line(options: dict[str, object], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        config(**options).validate()


def test_cli_and_model_train_offer_exactly_the_optimizers_schedules_and_precisions_training_knows() -> None:
    flags = {p.name: tuple(getattr(p.type, "choices", ())) for p in train_command.params}
    assert (flags["optimizer"], flags["lr_schedule"], flags["precision"]) == (OPTIMIZERS, LR_SCHEDULES, PRECISIONS)
    params = {p.name: p.choices for p in MODEL_TRAIN.params}
    pipeline = (params["model-optimizer"], params["model-lr-schedule"], params["model-precision"])
    assert pipeline == (OPTIMIZERS, LR_SCHEDULES, PRECISIONS)
