"""A Katib Experiment's trial as Katib makes it, so the strict checks and the tests see the job a trial runs.

Katib writes each trial's job from the Experiment's trial template: it replaces `${trialParameters.NAME}`
in the template's text by the value of the parameter NAME references (or the trial's name for
`${trialSpec.Name}`) and names the job after the trial (`<experiment>-<8 characters>`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from trainflow.workflows.kubernetes.shapes import ANY, METADATA, leaves

_PLACE = re.compile(r"\$\{trialParameters\.([^}]+)\}")
TRIAL_SPEC_NAME = "${trialSpec.Name}"

_SPACE = leaves("min", "max", "step", "list", "distribution")
_SETTINGS = leaves("name", "value")
EXPERIMENT = {
    "apiVersion": ANY,
    "kind": ANY,
    "metadata": METADATA,
    "spec": {
        "objective": {
            "type": ANY,
            "objectiveMetricName": ANY,
            "additionalMetricNames": ANY,
            "metricStrategies": leaves("name", "value"),
        },
        "algorithm": {"algorithmName": ANY, "algorithmSettings": _SETTINGS},
        "earlyStopping": {"algorithmName": ANY, "algorithmSettings": _SETTINGS},
        "parallelTrialCount": ANY,
        "maxTrialCount": ANY,
        "maxFailedTrialCount": ANY,
        "metricsCollectorSpec": {"collector": leaves("kind"), "source": ANY},
        "parameters": {"name": ANY, "parameterType": ANY, "feasibleSpace": _SPACE},
        "trialTemplate": {
            "primaryContainerName": ANY,
            "primaryPodLabels": ANY,
            "successCondition": ANY,
            "failureCondition": ANY,
            "trialParameters": leaves("name", "reference", "description"),
            "trialSpec": ANY,  # checked as the job it becomes (`trial_job`)
        },
    },
}


def sample_assignments(experiment: Mapping[str, Any]) -> dict[str, str]:
    """A value for each parameter the Experiment searches: its range's low end, or its first choice."""
    found = {}
    for p in experiment["spec"].get("parameters", []):
        space = p.get("feasibleSpace", {})
        found[p["name"]] = str(space["list"][0]) if space.get("list") else str(space.get("min", ""))
    return found


def trial_job(
    experiment: Mapping[str, Any], assignments: Mapping[str, str] | None = None, suffix: str = "x7k2m9qa"
) -> dict[str, Any]:
    """The job Katib creates for a trial of `experiment` with `assignments` (default: `sample_assignments`)."""
    values = dict(sample_assignments(experiment) if assignments is None else assignments)
    template = experiment["spec"]["trialTemplate"]
    trial_name = f"{experiment['metadata']['name']}-{suffix}"
    by_name = {}
    for p in template.get("trialParameters", []):
        by_name[p["name"]] = trial_name if p["reference"] == TRIAL_SPEC_NAME else values[p["reference"]]
    text = _PLACE.sub(lambda m: by_name[m.group(1)], json.dumps(template["trialSpec"]))
    job: dict[str, Any] = json.loads(text)
    job.setdefault("metadata", {})["name"] = trial_name
    return job
