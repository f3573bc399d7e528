"""A run's studies for the dashboard: each trial's parameters, value, state and curve, and the best so far."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from trainflow.workflows.backend import WorkflowInfo
from trainflow.workflows.trials import MAXIMIZE, best_so_far, studies


def study_view(info: WorkflowInfo) -> dict[str, Any]:
    """`{"studies": [...]}`: per Tune step its metric, whether higher is better, its trials and the best-so-far line."""
    return {
        "studies": [
            {
                "step": step,
                "metric": study.objective,
                "maximize": study.direction == MAXIMIZE,
                "trials": [asdict(t) for t in study.trials],
                "best_so_far": best_so_far(study),
            }
            for step, study in studies(info).items()
        ]
    }
