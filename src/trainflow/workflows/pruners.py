"""A local study's early stopping as Optuna pruners, in the steps at which trials report their objective.

Imported only when a study runs (it imports Optuna). Hyperband's resource is the trial's step. Optuna's default
smallest resource (1 step) splits a trial's first evaluation into several rungs and the study into as many brackets
as powers of the reduction factor fit in a trial's steps (5 for 100 steps), each bracket comparing its trials with
only its own few, the last ones stopping no trial. Here the smallest resource is the step of the trials' first
evaluation and the largest the steps they train in all (as they report them), so each rung is an evaluation the
trials make: for 100 steps evaluated every 20, rungs at steps 20 and 60 in two brackets; every 10, rungs at 10, 30
and 90 in three.
"""

from __future__ import annotations

import optuna

from trainflow.pipelines.tuning import StudySettings
from trainflow.workflows.trials import TOTAL_STEPS

REDUCTION_FACTOR = 3  # successive halving keeps the best third of the trials at each rung (Hyperband's usual eta)
MEDIAN_STARTUP_TRIALS = 2  # median stopping compares a trial with those before it once that many have ended


class FirstEvaluationHyperband(optuna.pruners.BasePruner):
    """Hyperband from the first step at which a trial reports (its evaluation interval) to the steps it trains.

    Its brackets are made at a trial's first report. A trial that reports no total (`report_progress(step)`)
    leaves the largest resource to Hyperband's `auto`: the last step the first completed trial reported, no trial
    being stopped until one has completed.
    """

    def __init__(self, reduction_factor: int = REDUCTION_FACTOR) -> None:
        self.reduction_factor = reduction_factor
        self._hyperband: optuna.pruners.HyperbandPruner | None = None

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if self._hyperband is None:
            first = min(trial.intermediate_values, default=None)
            if first is None:
                return False
            total = trial.user_attrs.get(TOTAL_STEPS)
            self._hyperband = optuna.pruners.HyperbandPruner(
                min_resource=max(1, first),
                max_resource=int(total) if isinstance(total, int) and total > first else "auto",
                reduction_factor=self.reduction_factor,
            )
        return self._hyperband.prune(study, trial)


def study_pruner(settings: StudySettings) -> optuna.pruners.BasePruner:
    """The pruner for the study's `early_stopping`: none, median or hyperband."""
    if settings.early_stopping == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=0)
    if settings.early_stopping == "hyperband":
        return FirstEvaluationHyperband()
    return optuna.pruners.NopPruner()
