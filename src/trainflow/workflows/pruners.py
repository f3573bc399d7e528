"""A local study's early stopping as Optuna pruners, in the steps at which trials report their objective.

Imported only when a study runs (it imports Optuna). Hyperband's resource is the trial's step: Optuna's default
smallest resource (1 step) splits a trial's first evaluation into several rungs and the study into as many brackets
as powers of the reduction factor fit in a trial's steps (5 for 100 steps), each bracket comparing its trials with
only its own few. The smallest resource here is the step of the trials' first evaluation, so each rung is an
evaluation the trials really make (for 100 steps evaluated every 20: rungs at steps 20 and 60, two brackets).
"""

from __future__ import annotations

import optuna

from trainflow.pipelines.tuning import StudySettings

REDUCTION_FACTOR = 3  # successive halving keeps the best third of the trials at each rung (Hyperband's usual eta)
MEDIAN_STARTUP_TRIALS = 2  # median stopping compares a trial with those before it once that many have ended


class FirstEvaluationHyperband(optuna.pruners.BasePruner):
    """Hyperband whose smallest resource is the first step at which a trial reports (its evaluation interval).

    Its brackets are made at the first report a trial makes after one trial has completed (Hyperband's `auto`
    largest resource: the last step the first completed trial reported); until then no trial is stopped.
    """

    def __init__(self, reduction_factor: int = REDUCTION_FACTOR) -> None:
        self.reduction_factor = reduction_factor
        self._hyperband: optuna.pruners.HyperbandPruner | None = None

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if self._hyperband is None:
            first = min(trial.intermediate_values, default=None)
            if first is None:
                return False
            self._hyperband = optuna.pruners.HyperbandPruner(
                min_resource=max(1, first), max_resource="auto", reduction_factor=self.reduction_factor
            )
        return self._hyperband.prune(study, trial)


def study_pruner(settings: StudySettings) -> optuna.pruners.BasePruner:
    """The pruner for the study's `early_stopping`: none, median or hyperband."""
    if settings.early_stopping == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=0)
    if settings.early_stopping == "hyperband":
        return FirstEvaluationHyperband()
    return optuna.pruners.NopPruner()
