"""Progress events for steps: `report_progress(step, total, loss=..., accuracy=...)` (see trainflow.progress)."""

from trainflow.progress import read_progress, report_progress

__all__ = ["read_progress", "report_progress"]
