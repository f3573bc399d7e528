"""Findings of `trainflow doctor`: what a check looked at, how it went, and the fix."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it went, and what to do about it (empty when nothing)."""

    name: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""
