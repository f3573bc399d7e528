"""A local study's early stopping, on a real Optuna study whose trials report as the trainer does.

The trainer reports its held-out accuracy every `eval-every` steps, not at its last step (its final value is an
output): 100 steps evaluated every 20 report at steps 20, 40, 60 and 80.
"""

from __future__ import annotations

import optuna
import pytest

from trainflow.pipelines.search_space import parse_search_space
from trainflow.pipelines.tuning import StudySettings
from trainflow.workflows.pruners import study_pruner
from trainflow.workflows.trials import TOTAL_STEPS

EVALUATIONS = (20, 40, 60, 80)


def _settings(early_stopping: str) -> StudySettings:
    dimensions = parse_search_space('{"x": {"type": "float", "low": 0.0, "high": 1.0}}')
    return StudySettings(dimensions, "accuracy", "maximize", 13, 1, None, "random", early_stopping, 0)


def _run(early_stopping: str, qualities: list[float], report_total: bool = True) -> list[int]:
    """Each trial in turn, its total steps reported as the trainer does (or not); the steps each one trained."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="study", direction="maximize", pruner=study_pruner(_settings(early_stopping))
    )
    trained = []
    for quality in qualities:
        trial = study.ask()
        if report_total:  # what the study's runner records from the trial's first progress event
            trial.set_user_attr(TOTAL_STEPS, 100)
        for step in EVALUATIONS:
            trial.report(quality * step / 100, step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                trained.append(step)
                break
        else:
            study.tell(trial, quality)
            trained.append(100)
    return trained


def test_hyperband_stops_trials_at_their_first_evaluation_and_three_times_it() -> None:
    # Each trial worse than those before it: in each of Hyperband's two brackets (rungs at steps 20 and 60, and
    # at 60) the first trial to reach a rung goes on, every later one is stopped there, from the second trial on.
    trained = _run("hyperband", [0.99 - 0.01 * n for n in range(13)])
    assert set(trained) <= {20, 60, 100}, f"stopped between the rungs that are evaluations: {trained}"
    assert trained.count(100) <= 2, f"more trials than brackets went on to the end: {trained}"
    assert trained[1] == 20 and 60 in trained, trained


def test_hyperband_without_a_reported_total_stops_no_trial_before_one_has_completed() -> None:
    trained = _run("hyperband", [0.99 - 0.01 * n for n in range(13)], report_total=False)
    assert trained[:2] == [100, 100] and set(trained) <= {20, 60, 100}, trained
    assert 20 in trained and 60 in trained, trained


@pytest.mark.parametrize("early_stopping", ["median", "hyperband"])
def test_a_trial_better_than_every_one_before_it_is_never_stopped(early_stopping: str) -> None:
    trained = _run(early_stopping, [0.5 + 0.03 * n for n in range(13)])
    assert trained == [100] * 13, trained


def test_median_stopping_stops_the_trials_below_the_median_at_their_first_evaluation() -> None:
    trained = _run("median", [0.9, 0.8, 0.95, 0.3, 0.2, 0.97])
    assert trained == [100, 100, 100, 20, 20, 100], trained
