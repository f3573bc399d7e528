"""A study's trials as plain records: what its `study.json` holds, what `trainflow get`, `compare` and the dashboard show.

A `Tune` step writes the file and declares its output of kind `trials` (pipelines.roles); readers find it
through that kind, never by a step's or an output's name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainflow.pipelines.roles import TRIALS
from trainflow.pipelines.tuning import DIRECTIONS
from trainflow.workflows.backend import DONE, WorkflowInfo
from trainflow.workflows.runs import RunSummary

COMPLETE, PRUNED, FAILED, RUNNING, INTERRUPTED = "complete", "pruned", "failed", "running", "interrupted"
FILE = "study.json"
TOTAL_STEPS = "total_steps"  # a trial's attribute in the study: the steps it trains in all, as it reports them
MAXIMIZE, MINIMIZE = DIRECTIONS
_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class TrialRecord:
    """One trial: its number, the parameters it ran with, its objective value, how it ended."""

    number: int
    params: dict[str, str]
    state: str
    value: float | None = None
    duration: float | None = None  # seconds
    steps: int = 0  # the last training step it reported: what it cost
    train_dir: str = ""
    best: bool = False
    error: str = ""
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, objective) as it was reported


@dataclass(frozen=True)
class StudyRecord:
    """A study: its objective and direction, and its trials in the order they started."""

    objective: str
    direction: str
    trials: list[TrialRecord]

    def best(self) -> TrialRecord | None:
        return next((t for t in self.trials if t.best), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.objective,
            "maximize": self.direction == MAXIMIZE,
            "trials": [asdict(t) for t in self.trials],
        }


def write_study(path: Path, study: StudyRecord) -> None:
    """Write `study.json` under a temporary name and rename it: readers see the old file or the new one."""
    from trainflow.storage.atomic import atomic_write_bytes

    text = json.dumps(study.as_json(), indent=1, allow_nan=False, default=_finite)
    atomic_write_bytes(path, text.encode())


def _finite(value: object) -> object:
    raise TypeError(f"not JSON: {type(value).__name__}")


def read_study(path: Path) -> StudyRecord | None:
    """The study in `path`, None if it is missing or not a study (a reader shows nothing rather than failing)."""
    try:
        if path.stat().st_size > _MAX_BYTES:
            return None
        data = json.loads(path.read_bytes())
        trials = [_trial(t) for t in data["trials"]]
        return StudyRecord(str(data["metric"]), MAXIMIZE if data["maximize"] is True else MINIMIZE, trials)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _trial(data: dict[str, Any]) -> TrialRecord:
    value = data.get("value")
    return TrialRecord(
        number=int(data["number"]),
        params={str(k): str(v) for k, v in dict(data.get("params", {})).items()},
        state=str(data["state"]),
        value=float(value) if isinstance(value, int | float) and math.isfinite(value) else None,
        duration=float(data["duration"]) if isinstance(data.get("duration"), int | float) else None,
        steps=int(data.get("steps", 0)),
        train_dir=str(data.get("train_dir", "")),
        best=bool(data.get("best", False)),
        error=str(data.get("error", "")),
        curve=[(int(s), float(v)) for s, v in data.get("curve", [])],
    )


def studies(info: WorkflowInfo) -> dict[str, StudyRecord]:
    """Each finished study of the run (by step name), from its output of kind `trials` (a local file)."""
    found = {}
    for step in info.steps:
        if step.status not in DONE:
            continue
        keys = [k for k, kind in step.provides.get("kinds", {}).items() if kind == TRIALS and k in step.outputs]
        for key in keys:
            study = read_study(Path(str(step.outputs[key]).removeprefix("file://")))
            if study is not None:
                found[step.name] = study
    return found


def best_so_far(study: StudyRecord) -> list[float | None]:
    """After each trial (in order), the best value any finished trial had reached: the study's progress line."""
    best: float | None = None
    found = []
    for trial in study.trials:
        if trial.state == COMPLETE and trial.value is not None:
            better = best is None or (trial.value > best if study.direction == MAXIMIZE else trial.value < best)
            best = trial.value if better else best
        found.append(best)
    return found


def trial_runs(info: WorkflowInfo, numbers: Sequence[int] | None = None) -> list[RunSummary]:
    """The run's trials (those numbered `numbers`, else all) as runs `compare` puts side by side: `RUN#N`."""
    from trainflow.workflows.runs import final_metrics

    found = []
    for study in studies(info).values():
        for trial in study.trials:
            if numbers is not None and trial.number not in numbers:
                continue
            metrics: dict[str, Any] = final_metrics(trial.train_dir) if trial.train_dir else {}
            metrics.update({study.objective: trial.value, "trained steps": trial.steps})
            found.append(
                RunSummary(
                    name=f"{info.name}#{trial.number}",
                    status=trial.state + (" (best)" if trial.best else ""),
                    params={**info.params, **trial.params},
                    metrics=metrics,
                    duration=trial.duration,
                )
            )
    return found
