"""Structured progress events: a step appends JSON lines to the file `$TRAINFLOW_PROGRESS` names.

Each line is `{"step": N, "total": M, "time": T, ...metrics}`. The local runner sets the variable for
every step; `trainflow submit --watch` draws a progress bar from the last event and the dashboard
draws curves from every numeric metric. Outside a runner (no variable) reporting does nothing. With
tracking on (`trainflow.tracking`), the metrics also go to the step's MLflow run, batched.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from trainflow.tracking import step_run_id

METRICS_FILE = "metrics.json"  # the final metrics training writes into its train dir, read by the CLI and UI

ENV = "TRAINFLOW_PROGRESS"


def report_progress(step: int, total: int | None = None, **metrics: float) -> None:
    """Record that `step` of `total` is done, with metrics such as loss=0.3, accuracy=0.9."""
    numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
    if step_run_id():  # tracking on and a step's MLflow run open: the curves go there too, batched
        from trainflow.tracking.sink import record

        record(int(step), numbers, last=total is not None and step >= total)
    path = os.environ.get(ENV)
    if not path:
        return
    event: dict[str, Any] = {"step": int(step), "time": round(time.time(), 3)}
    if total is not None:
        event["total"] = int(total)
    event.update(numbers)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")


def read_progress(path: Path, tail_bytes: int | None = None) -> list[dict[str, Any]]:
    """The events in `path` (the last `tail_bytes` of it when given); a line being written is skipped."""
    try:
        with open(path, "rb") as f:
            if tail_bytes is not None:
                f.seek(max(0, path.stat().st_size - tail_bytes))
            data = f.read()
    except FileNotFoundError:
        return []
    events = []
    for line in data.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("step"), int):
            events.append(event)
    return events
