"""A Katib Experiment's best trial, from what its status says (`status.currentOptimalTrial`), checked as hostile data."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from trainflow.workflows.errors import WorkflowError

_TRIAL_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class BestTrial:
    trial: str
    params: dict[str, str]
    value: float


def best_of(objective: str, trial: str, assignments: str, observation: str) -> BestTrial:
    """The best trial's name, parameters and objective value; WorkflowError in one line when Katib has none."""
    if not _TRIAL_NAME.fullmatch(trial) or len(trial) > 253:
        raise WorkflowError(f"the Experiment names no best trial ('{trial[:60]}'): did any trial succeed?")
    try:
        pairs = json.loads(assignments)
        metrics = json.loads(observation).get("metrics", [])
        params = {str(p["name"]): str(p["value"]) for p in pairs}
        found = [m for m in metrics if m.get("name") == objective]
        value = float(found[0].get("latest", found[0].get("max"))) if found else math.nan
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        raise WorkflowError("the Experiment's best trial is not what Katib writes: check its status") from None
    if not math.isfinite(value):
        raise WorkflowError(f"the Experiment's best trial {trial} reported no finite {objective[:60]}")
    return BestTrial(trial, params, value)
