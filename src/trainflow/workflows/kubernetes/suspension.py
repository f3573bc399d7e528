"""Suspending a run on a cluster: Argo's `spec.suspend`, set and cleared with a merge patch.

A suspended Argo workflow starts no new step; running pods finish. `trainflow get` shows it Suspended.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainflow.workflows.backend import PENDING, RUNNING, SUSPENDED
from trainflow.workflows.errors import WorkflowError


def shown_status(raw: Mapping[str, Any], status: str) -> str:
    """A running workflow whose spec says suspend is Suspended."""
    suspended = bool((raw.get("spec") or {}).get("suspend"))
    return SUSPENDED if suspended and status in (PENDING, RUNNING) else status


def patch(name: str, status: str, suspend: bool) -> dict[str, Any]:
    """The merge patch that suspends (or resumes) workflow `name`, now `status`; WorkflowError if it cannot."""
    if suspend and status not in (PENDING, RUNNING):
        raise WorkflowError(f"workflow {name} is {status}, not running")
    if not suspend and status != SUSPENDED:
        raise WorkflowError(f"workflow {name} is {status}, not suspended")
    return {"spec": {"suspend": True if suspend else None}}  # null removes the field
