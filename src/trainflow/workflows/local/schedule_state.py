"""Local schedules in the state database (`$TRAINFLOW_HOME/trainflow.db`, beside the runs): the schedules, and
what each due time did.

A due time is claimed in one transaction (`claim`): the schedule's next due time moves past it and its fire is
recorded, before the run is submitted. A scheduler killed after that does not fire it again when it restarts.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.local.state import StateStore
from trainflow.workflows.schedules import STARTING, Fire, ScheduleInfo, When

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY, pipeline TEXT NOT NULL, spec TEXT NOT NULL, params TEXT NOT NULL,
    cron TEXT, every INTEGER, timezone TEXT NOT NULL, deadline INTEGER NOT NULL, policy TEXT NOT NULL,
    suspended INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, anchor REAL NOT NULL,
    last_due REAL, next_due REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule_fires (
    schedule TEXT NOT NULL REFERENCES schedules(name) ON DELETE CASCADE, due REAL NOT NULL,
    workflow TEXT NOT NULL, outcome TEXT NOT NULL, message TEXT NOT NULL DEFAULT '', fired_at REAL NOT NULL,
    PRIMARY KEY (schedule, due)
);
"""
HISTORY = 20  # fires `schedule get` shows (older ones are kept, not shown)


@dataclass(frozen=True)
class Stored:
    """A schedule as the scheduler needs it: its timing, policy, pipeline spec and values, and its due times."""

    name: str
    when: When
    policy: str
    spec: dict[str, Any]  # {"pipeline": serial.to_dict(...), "python_path": [...]}
    params: dict[str, str]
    suspended: bool
    anchor: float
    last_due: float | None
    next_due: float


class ScheduleStore:
    """The local backend's schedules."""

    def __init__(self, path: Path) -> None:
        StateStore(path)  # the database, in WAL mode, exists once this returns
        self.path = path
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        except sqlite3.OperationalError as exc:
            raise WorkflowError(f"cannot use the schedules in {self.path}: {exc}; check TRAINFLOW_HOME") from None
        finally:
            db.close()

    def create(self, info: ScheduleInfo, when: When, spec: dict[str, Any], anchor: float, next_due: float) -> None:
        """Record a new schedule; refuses a name that exists."""
        with self._connect() as db:
            try:
                db.execute(
                    "INSERT INTO schedules (name, pipeline, spec, params, cron, every, timezone, deadline, policy, "
                    "suspended, created_at, anchor, next_due) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        info.name,
                        info.pipeline,
                        json.dumps(spec),
                        json.dumps(info.params),
                        when.cron,
                        when.every,
                        when.timezone,
                        when.starting_deadline,
                        info.concurrency_policy,
                        int(info.suspended),
                        info.created_at,
                        anchor,
                        next_due,
                    ),
                )
            except sqlite3.IntegrityError:
                raise WorkflowError(
                    f"a schedule named '{info.name}' already exists: `trainflow schedule delete {info.name}` "
                    "removes it, or pick another name"
                ) from None

    def names(self, active_only: bool = False) -> list[str]:
        where = " WHERE suspended = 0" if active_only else ""
        with self._connect() as db:
            return [r[0] for r in db.execute(f"SELECT name FROM schedules{where} ORDER BY name")]

    def stored(self, name: str) -> Stored:
        with self._connect() as db:
            row = db.execute("SELECT * FROM schedules WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise WorkflowError(f"no schedule named '{name}': see `trainflow schedule list`")
        return _stored(row)

    def info(self, name: str, history: int = HISTORY) -> ScheduleInfo:
        with self._connect() as db:
            row = db.execute("SELECT * FROM schedules WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise WorkflowError(f"no schedule named '{name}': see `trainflow schedule list`")
            fires = db.execute(
                "SELECT * FROM schedule_fires WHERE schedule = ? ORDER BY due DESC LIMIT ?", (name, history)
            ).fetchall()
            started = db.execute(
                "SELECT workflow, fired_at FROM schedule_fires WHERE schedule = ? AND outcome != 'Skipped' "
                "ORDER BY due DESC LIMIT 1",
                (name,),
            ).fetchone()
        return _info(row, fires, started)

    def all(self) -> list[ScheduleInfo]:
        return [self.info(n, history=0) for n in self.names()]

    def delete(self, name: str) -> None:
        with self._connect() as db:
            if not db.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount:
                raise WorkflowError(f"no schedule named '{name}': see `trainflow schedule list`")

    def set_suspended(self, name: str, suspended: bool, next_due: float | None) -> None:
        """Suspend or resume; a resumed schedule's next due time is `next_due` (it does not catch up)."""
        with self._connect() as db:
            changed = db.execute(
                "UPDATE schedules SET suspended = ?, next_due = COALESCE(?, next_due) WHERE name = ?",
                (int(suspended), next_due, name),
            ).rowcount
        if not changed:
            raise WorkflowError(f"no schedule named '{name}': see `trainflow schedule list`")

    def claim(self, name: str, seen_next: float, due: float | None, next_due: float, workflow: str, now: float) -> bool:
        """In one transaction: if the schedule's next due time is still `seen_next`, move it to `next_due` and, when
        `due` is given, record its fire as Starting. False when another scheduler (or a change) got there first."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                moved = db.execute(
                    "UPDATE schedules SET next_due = ?, last_due = COALESCE(?, last_due) "
                    "WHERE name = ? AND next_due = ? AND suspended = 0",
                    (next_due, due, name, seen_next),
                ).rowcount
                if moved and due is not None:
                    db.execute(
                        "INSERT INTO schedule_fires (schedule, due, workflow, outcome, fired_at) VALUES (?,?,?,?,?)",
                        (name, due, workflow, STARTING, now),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return bool(moved)

    def record(self, name: str, due: float, outcome: str, message: str = "") -> None:
        """What the fire at `due` came to: Started, Skipped, Replaced or NotStarted (with why)."""
        with self._connect() as db:
            db.execute(
                "UPDATE schedule_fires SET outcome = ?, message = ? WHERE schedule = ? AND due = ?",
                (outcome, message[:500], name, due),
            )

    def active_runs(self, name: str, limit: int = 50) -> list[str]:
        """The runs this schedule started most recently (newest first): the ones a new fire may overlap."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT workflow FROM schedule_fires WHERE schedule = ? AND outcome IN ('Started', 'Replaced') "
                "ORDER BY due DESC LIMIT ?",
                (name, limit),
            ).fetchall()
        return [r[0] for r in rows]


def _stored(row: sqlite3.Row) -> Stored:
    return Stored(
        name=row["name"],
        when=When(row["cron"], row["every"], row["timezone"], row["deadline"]),
        policy=row["policy"],
        spec=json.loads(row["spec"]),
        params=json.loads(row["params"]),
        suspended=bool(row["suspended"]),
        anchor=row["anchor"],
        last_due=row["last_due"],
        next_due=row["next_due"],
    )


def _info(row: sqlite3.Row, fires: list[sqlite3.Row], started: sqlite3.Row | None) -> ScheduleInfo:
    when = When(row["cron"], row["every"], row["timezone"], row["deadline"])
    return ScheduleInfo(
        name=row["name"],
        pipeline=row["pipeline"],
        schedule=when.text(),
        timezone=when.timezone,
        concurrency_policy=row["policy"],
        suspended=bool(row["suspended"]),
        params=json.loads(row["params"]),
        created_at=row["created_at"],
        last_run=started[0] if started else "",
        last_fired_at=started[1] if started else None,
        next_run_at=None if row["suspended"] else row["next_due"],
        starting_deadline=when.starting_deadline,
        history=[Fire(f["due"], f["workflow"], f["outcome"], f["message"], f["fired_at"]) for f in fires],
    )
