"""Schedules, backend-neutral: when a pipeline runs (a cron expression or an interval), how runs overlap, names.

A schedule fires at its due times; each run is named `NAME-<unix time of the due time>`, as Argo names the runs of a
CronWorkflow, so NAME is a DNS label of at most 52 characters (the run's name stays a 63-character label). Cron
expressions are read by cronsim (five fields, in `timezone`, UTC unless given); an interval is `--every 30s`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from trainflow.pipelines.k8s_names import is_dns_label
from trainflow.workflows.errors import WorkflowError

POLICIES = ("Allow", "Forbid", "Replace")  # Argo's concurrencyPolicy: what a due run does while an earlier one runs
NAME_MAX = 52  # + '-' + a 10-digit Unix time = 63, a DNS label
EVERY_MIN = 1.0
EVERY_MAX = 366 * 86400.0
DEFAULT_DEADLINE = 3600  # seconds a missed run may still start (Argo's startingDeadlineSeconds)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_EVERY = re.compile(r"(\d{1,9})([smhd])")
# What a fire of a schedule did (the `schedule get` history).
STARTED, SKIPPED, REPLACED, NOT_STARTED, STARTING = "Started", "Skipped", "Replaced", "NotStarted", "Starting"


@dataclass(frozen=True)
class When:
    """A schedule's timing: a cron expression or an interval in seconds (exactly one), its time zone and deadline."""

    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"
    starting_deadline: int = DEFAULT_DEADLINE

    def text(self) -> str:
        """As users write it: the cron expression, or `@every 30s` (Argo's form of an interval)."""
        return self.cron if self.cron is not None else f"@every {self.every}s"

    def next_after(self, after: float, anchor: float) -> float:
        """The first due time strictly after `after` (an interval counts from `anchor`, the schedule's creation)."""
        if self.every is not None:
            periods = int((after - anchor) // self.every) + 1
            return anchor + max(periods, 1) * self.every
        from cronsim import CronSim

        return next(CronSim(self.cron or "", datetime.fromtimestamp(after, ZoneInfo(self.timezone)))).timestamp()

    def last_at_or_before(self, now: float, after: float, anchor: float) -> float | None:
        """The latest due time in (`after`, `now`] (None if none): a schedule that missed several runs catches up one."""
        due = self.next_after(after, anchor)
        if due > now:
            return None
        if self.every is not None:
            return anchor + int((now - anchor) // self.every) * self.every
        latest = due
        while (following := self.next_after(latest, anchor)) <= now:
            latest = following
        return latest


@dataclass(frozen=True)
class ScheduleRequest:
    """What `schedule create` asks for: the schedule's name, timing and overlap policy, the pipeline and its values."""

    name: str
    when: When
    policy: str = "Allow"
    no_cache: bool = False  # its runs run every step (a nightly run's inputs may change where no cache key sees)


@dataclass
class Fire:
    """One due time of a schedule: the run it named, and what happened (Started, Skipped, Replaced, NotStarted)."""

    due: float
    workflow: str
    outcome: str
    message: str = ""
    fired_at: float | None = None


@dataclass
class ScheduleInfo:
    """A schedule as every backend reports it."""

    name: str
    pipeline: str
    schedule: str  # the cron expression, or `@every Ns`
    timezone: str
    concurrency_policy: str
    suspended: bool
    params: dict[str, str]
    created_at: float | None = None
    last_run: str = ""  # the name of the last run it started ('' for none yet)
    last_fired_at: float | None = None
    next_run_at: float | None = None
    starting_deadline: int = DEFAULT_DEADLINE
    backend: str = "local"
    history: list[Fire] = field(default_factory=list)  # newest first

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_name(name: str) -> str:
    """`name` if it can name a schedule (its runs add '-<unix time>'); else one line saying what it must be."""
    if not is_dns_label(name) or len(name) > NAME_MAX:
        raise WorkflowError(
            f"schedule name '{name}' must be lowercase letters, digits and '-', start with a letter or digit, end "
            f"with one, and be at most {NAME_MAX} characters (its runs are named NAME-<unix time>)"
        )
    return name


def parse_every(text: str) -> int:
    """`30s`, `5m`, `2h`, `1d` as seconds; anything else is one line saying how to write it."""
    found = _EVERY.fullmatch(text.strip())
    if found is None:
        raise WorkflowError(f"bad interval '{text}': write a whole number and a unit, e.g. --every 30s, 5m, 2h or 1d")
    seconds = int(found[1]) * _UNITS[found[2]]
    if not EVERY_MIN <= seconds <= EVERY_MAX:
        raise WorkflowError(f"bad interval '{text}': use between 1s and 366d")
    return seconds


def check_cron(expression: str) -> str:
    """`expression` if cronsim reads it as five cron fields; else one line saying why."""
    from cronsim import CronSim, CronSimError

    if "\n" in expression or "\r" in expression or len(expression) > 200 or len(expression.split()) != 5:
        raise WorkflowError(
            f"bad cron expression '{expression[:80]}': write five fields, minute hour day month weekday, "
            "e.g. --cron '0 3 * * *'"
        )
    try:
        CronSim(expression, datetime(2026, 1, 1))
    except CronSimError as exc:
        raise WorkflowError(f"bad cron expression '{expression}': {exc}; e.g. --cron '0 3 * * *'") from None
    return expression


def check_timezone(name: str) -> str:
    """`name` if it is an IANA time zone (e.g. Europe/Paris, UTC)."""
    try:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-/]{0,63}", name):
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WorkflowError(f"unknown time zone '{name[:80]}': use an IANA name such as UTC or Europe/Paris") from None
    return name


def when_of(cron: str | None, every: str | None, timezone: str = "UTC", deadline: int = DEFAULT_DEADLINE) -> When:
    """The timing `--cron` or `--every` (exactly one) gives, checked."""
    if (cron is None) == (every is None):
        raise WorkflowError("give exactly one of --cron 'MIN HOUR DAY MONTH WEEKDAY' or --every 30s")
    if deadline < 0:
        raise WorkflowError(f"bad --starting-deadline {deadline}: use a number of seconds, 0 or more")
    zone = check_timezone(timezone)
    if cron is not None:
        return When(cron=check_cron(cron), timezone=zone, starting_deadline=deadline)
    return When(every=parse_every(every or ""), timezone=zone, starting_deadline=deadline)


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise WorkflowError(f"unknown concurrency policy '{policy}': use {', '.join(POLICIES)}")
    return policy


def run_name(schedule: str, due: float) -> str:
    """The name of the run a schedule starts at `due` (Argo's: NAME-<unix time of the scheduled time>)."""
    return f"{schedule}-{int(due)}"
