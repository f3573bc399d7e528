"""Runs compared on the dashboard: what `trainflow compare` prints, plus each run's curves to overlay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from trainflow.ui.curves import Curves
from trainflow.ui.errors import UiError
from trainflow.workflows.backend import WorkflowInfo
from trainflow.workflows.runs import comparison_rows, differing, summarize

MAX_RUNS = 8  # one colour each on the charts
OVERLAID = ("train/loss", "eval/loss", "train/accuracy", "eval/accuracy")


def compared_names(names: Sequence[str]) -> list[str]:
    """The runs to compare, each once; UiError unless there are two to MAX_RUNS of them."""
    unique = list(dict.fromkeys(names))
    if len(unique) < 2:
        raise UiError("select two or more runs to compare: /api/compare?run=NAME&run=NAME")
    if len(unique) > MAX_RUNS:
        raise UiError(f"compare at most {MAX_RUNS} runs at once ({len(unique)} selected): select fewer")
    return unique


def comparison(infos: Sequence[WorkflowInfo], curves: Sequence[Curves]) -> dict[str, Any]:
    """Each run's summary and loss/accuracy series, and the rows of `trainflow compare` (differences marked)."""
    runs = [summarize(info) for info in infos]
    return {
        "runs": [
            {
                **asdict(run),
                "series": {tag: [[s, v] for s, v in c.series[tag]] for tag in OVERLAID if tag in c.series},
                "total_steps": c.total_steps,
            }
            for run, c in zip(runs, curves, strict=True)
        ],
        "rows": [
            {"label": label, "values": values, "differs": differing(values)}
            for label, values in comparison_rows(runs, all_params=False)
        ],
    }
