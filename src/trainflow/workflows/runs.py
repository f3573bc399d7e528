"""What a run measured, read from its train dirs' metrics.json and its metric outputs: for listing and comparing runs."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trainflow.progress import METRICS_FILE
from trainflow.storage import StorageError, StorageOptions, open_store
from trainflow.workflows.backend import WorkflowInfo
from trainflow.workflows.endpoints import metric_outputs, model_version, train_dirs

FIRST_METRICS = ("accuracy", "loss", "global_step")  # what a comparison reads first; the others follow by name


@dataclass
class RunSummary:
    """One run side by side with others: its parameters, final metrics and model version."""

    name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)
    model_version: int | None = None
    duration: float | None = None


def summarize(info: WorkflowInfo, options: StorageOptions | None = None) -> RunSummary:
    """The run's summary; metrics stay empty while it trains, or when it wrote none."""
    metrics: dict[str, Any] = {}
    for train_dir in train_dirs(info):
        metrics.update(final_metrics(train_dir, options))
    metrics.update(metric_outputs(info))
    return RunSummary(
        name=info.name,
        status=info.status,
        params=dict(info.params),
        metrics=metrics,
        model_version=model_version(info),
        duration=(info.finished_at or 0) - info.started_at if info.started_at and info.finished_at else None,
    )


def final_metrics(train_dir: str, options: StorageOptions | None = None) -> dict[str, Any]:
    """The numbers in `<train_dir>/metrics.json` (non-finite ones as None); empty when absent or not JSON."""
    try:
        data = json.loads(open_store(train_dir, options).read_bytes(METRICS_FILE), parse_constant=lambda _: None)
    except (StorageError, ValueError, RecursionError):  # not written (yet), unreachable, torn or hostile
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(k): (v if math.isfinite(v) else None) if isinstance(v, float) else v
        for k, v in data.items()
        if isinstance(v, int | float | str | bool) or v is None
    }


def differing(values: Sequence[object]) -> bool:
    """True when the runs do not all have the same value."""
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1


def shown(value: object) -> str:
    """A value in a table: floats to 4 decimals, absent ones as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def comparison_rows(runs: Sequence[RunSummary], all_params: bool) -> list[tuple[str, list[object]]]:
    """(label, a value per run): status, duration, model version, the metrics, then the parameters that differ."""
    found: list[tuple[str, list[object]]] = [
        ("status", [r.status for r in runs]),
        ("duration (s)", [None if r.duration is None else round(r.duration, 1) for r in runs]),
        ("model version", [r.model_version for r in runs]),
    ]
    metrics = dict.fromkeys(k for k in FIRST_METRICS if any(k in r.metrics for r in runs))
    metrics.update(dict.fromkeys(sorted({k for r in runs for k in r.metrics} - set(metrics))))
    found += [(name, [r.metrics.get(name) for r in runs]) for name in metrics]
    for name in dict.fromkeys(k for r in runs for k in r.params):
        values: list[object] = [r.params.get(name) for r in runs]
        if all_params or differing(values):
            found.append((f"-p {name}", values))
    return found
