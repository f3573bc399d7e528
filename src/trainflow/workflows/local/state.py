"""Run state in SQLite (`$TRAINFLOW_HOME/trainflow.db`): workflows and their steps.

Every write is one short transaction; several runners and CLI processes share the file (WAL mode).
A runner, and submit while it records and starts one, hold one connection open (`held`): when the last
connection to a WAL database closes, SQLite checkpoints the log into the file and syncs it, which made
each such write cost milliseconds (tens on a busy disk) instead of microseconds.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainflow.workflows.backend import FAILED, PENDING, StepInfo, WorkflowInfo
from trainflow.workflows.errors import WorkflowError

if TYPE_CHECKING:  # a recorded pipeline is decoded only where a reader needs it, not by `trainflow list`
    from trainflow.pipelines import Pipeline

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workflows (
    name TEXT PRIMARY KEY, pipeline TEXT NOT NULL, status TEXT NOT NULL, params TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, message TEXT NOT NULL DEFAULT '',
    runner_pid INTEGER, runner_started REAL
);
CREATE TABLE IF NOT EXISTS steps (
    workflow TEXT NOT NULL REFERENCES workflows(name) ON DELETE CASCADE, name TEXT NOT NULL,
    position INTEGER NOT NULL, status TEXT NOT NULL, service INTEGER NOT NULL DEFAULT 0,
    started_at REAL, finished_at REAL, message TEXT NOT NULL DEFAULT '', outputs TEXT NOT NULL DEFAULT '{}',
    pid INTEGER, pid_started REAL, attempts INTEGER NOT NULL DEFAULT 0, addresses TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (workflow, name)
);
CREATE TABLE IF NOT EXISTS step_cache (
    key TEXT PRIMARY KEY, workflow TEXT NOT NULL, step TEXT NOT NULL, outputs TEXT NOT NULL, created_at REAL NOT NULL
);
"""
# Columns added after the first release: a database created earlier gets them when opened.
_ADDED_COLUMNS = (
    ("workflows", "spec", "TEXT"),
    ("workflows", "no_cache", "INTEGER NOT NULL DEFAULT 0"),
    ("steps", "addresses", "TEXT NOT NULL DEFAULT '{}'"),
)
# Raised whenever _SCHEMA or _ADDED_COLUMNS change: a database at this version needs no schema work when opened.
_SCHEMA_VERSION = 2
_STEP_FIELDS = (
    "status",
    "started_at",
    "finished_at",
    "message",
    "outputs",
    "pid",
    "pid_started",
    "attempts",
    "addresses",
)
_WORKFLOW_FIELDS = ("status", "started_at", "finished_at", "message", "runner_pid", "runner_started")
# What a WorkflowInfo is read from: not the spec (tens of kB a run), which sorting 1,000 runs by age copied whole.
_INFO_COLUMNS = "name, pipeline, status, params, created_at, started_at, finished_at, message"
_NOT_UTF8 = "Could not decode to UTF-8"  # how sqlite3 reports a TEXT value that is not UTF-8 (an OperationalError)


class StateStore:
    """Workflows and steps of the local backend."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._held = threading.local()  # the connection `held` keeps open, per thread (sqlite3's rule)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkflowError(
                f"cannot make the workflow state directory {path.parent}: {exc.strerror}; set "
                "TRAINFLOW_HOME to a writable directory"
            ) from None
        if not self._schema_current():
            self._make_schema()

    def _schema_current(self) -> bool:
        """True when the database already has this version's schema (every open after the first)."""
        try:
            db = sqlite3.connect(self.path, timeout=30)
            try:
                return bool(db.execute("PRAGMA user_version").fetchone()[0] >= _SCHEMA_VERSION)
            finally:
                db.close()
        except sqlite3.Error:  # not made yet, or being made by another process: _make_schema waits for it
            return False

    def _make_schema(self) -> None:
        # Switching to WAL takes a lock that SQLite's busy timeout does not wait for, so two processes
        # doing it at once fail with "database is locked". The mode is stored in the file, so it is set
        # here, one process at a time, not on every connection.
        from filelock import FileLock  # only a new (or older) database needs it

        with FileLock(f"{self.path}.lock"), self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            for table, column, kind in _ADDED_COLUMNS:
                if column not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            if db.execute("PRAGMA user_version").fetchone()[0] < _SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")  # last: a reader seeing it sees the rest

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys=ON")
            # With WAL, NORMAL syncs at checkpoints, not on every commit: still never corrupt, and a crash
            # of the machine can only lose the last few status updates (a runner restart redoes those).
            db.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            db.close()
            raise
        return db

    @contextmanager
    def held(self) -> Iterator[None]:
        """Every call on this thread inside shares one connection, closed (and checkpointed) once at the end."""
        if getattr(self._held, "db", None) is not None:
            yield
            return
        with self._connect() as db:
            self._held.db = db
            try:
                yield
            finally:
                self._held.db = None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            held = getattr(self._held, "db", None)
            if held is not None:
                try:
                    yield held
                except BaseException:
                    if held.in_transaction:  # a held connection must not stay inside a failed transaction
                        held.rollback()
                    raise
                return
            db = self._open()
            try:
                yield db
            finally:
                db.close()
        except sqlite3.OperationalError as exc:
            if str(exc).startswith(_NOT_UTF8):  # sqlite3's only sign of a damaged text value; its text is not shown
                raise _damaged(self.path, "a text value is not UTF-8") from None
            raise WorkflowError(
                f"cannot use the workflow state in {self.path}: {exc}; check that TRAINFLOW_HOME "
                f"is a writable directory on a disk with free space"
            ) from None
        except sqlite3.DatabaseError as exc:
            # sqlite3 raises this class itself for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB), left as it is for the
            # user to recover; its subclasses (a constraint, a misused statement) are trainflow's, never the file's
            if type(exc) is not sqlite3.DatabaseError:
                raise
            raise _damaged(self.path, str(exc)) from None

    def create(self, info: WorkflowInfo, spec: dict[str, Any] | None = None, no_cache: bool = False) -> None:
        """Record a new workflow, its pipeline spec and its steps; refuses a name that exists."""
        with self._connect() as db:
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute(
                    "INSERT INTO workflows (name, pipeline, status, params, created_at, message, spec, no_cache) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (
                        info.name,
                        info.pipeline,
                        info.status,
                        json.dumps(info.params),
                        info.created_at,
                        info.message,
                        json.dumps(spec) if spec is not None else None,
                        int(no_cache),
                    ),
                )
                db.executemany(
                    "INSERT INTO steps (workflow, name, position, status, service) VALUES (?,?,?,?,?)",
                    [(info.name, s.name, i, s.status, int(s.service)) for i, s in enumerate(info.steps)],
                )
                db.execute("COMMIT")
            except sqlite3.IntegrityError:
                db.execute("ROLLBACK")
                raise already_exists(info.name) from None

    def get(self, name: str) -> WorkflowInfo:
        with self._connect() as db:
            row = db.execute(f"SELECT {_INFO_COLUMNS} FROM workflows WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise WorkflowError(f"no workflow named '{name}': see `trainflow list`")
            steps = db.execute("SELECT * FROM steps WHERE workflow = ? ORDER BY position", (name,)).fetchall()
        return _workflow(row, steps)

    def spec(self, name: str) -> tuple[dict[str, Any] | None, bool]:
        """The pipeline spec a workflow was submitted with (None before specs were stored) and its no-cache flag."""
        text, no_cache = self.spec_text(name)
        return (json.loads(text) if text else None), no_cache

    def spec_text(self, name: str) -> tuple[str | None, bool]:
        """`spec` as the JSON text it is stored as."""
        with self._connect() as db:
            row = db.execute("SELECT spec, no_cache FROM workflows WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise WorkflowError(f"no workflow named '{name}': see `trainflow list`")
        return row[0] or None, bool(row[1])

    def status(self, name: str) -> str:
        """The workflow's recorded status alone (the runner reads it when told the status changed)."""
        with self._connect() as db:
            row = db.execute("SELECT status FROM workflows WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise WorkflowError(f"no workflow named '{name}': see `trainflow list`")
        return str(row[0])

    def set_status(self, name: str, status: str, allowed: tuple[str, ...]) -> bool:
        """Set the workflow's status if it is one of `allowed` now (one transaction); False if it was not."""
        with self._connect() as db:
            changed = db.execute(
                f"UPDATE workflows SET status = ? WHERE name = ? AND status IN ({','.join('?' * len(allowed))})",
                (status, name, *allowed),
            ).rowcount
        return bool(changed)

    def replace_steps(self, workflow: str, old: list[str], new: list[str]) -> None:
        """Replace the step rows `old` (adjacent) by Pending rows `new`, in their place: a fan-out over an earlier
        step's output expanded into its instances once that step ran, or folded back before it runs again."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            marks = ",".join("?" * len(old))
            row = db.execute(
                f"SELECT MIN(position) FROM steps WHERE workflow = ? AND name IN ({marks})", (workflow, *old)
            ).fetchone()
            if row is None or row[0] is None:
                db.execute("ROLLBACK")
                raise WorkflowError(f"workflow {workflow} has no step '{old[0]}' to expand")
            db.execute(
                "UPDATE steps SET position = position + ? WHERE workflow = ? AND position >= ?",
                (len(new) - len(old), workflow, row[0] + len(old)),
            )
            db.execute(f"DELETE FROM steps WHERE workflow = ? AND name IN ({marks})", (workflow, *old))
            db.executemany(
                "INSERT INTO steps (workflow, name, position, status, service) VALUES (?,?,?,?,0)",
                [(workflow, name, row[0] + i, PENDING) for i, name in enumerate(new)],
            )
            db.execute("COMMIT")

    def cached(self, key: str) -> tuple[str, str, dict[str, Any]] | None:
        """(workflow, step, outputs) of the earlier successful step with cache key `key`."""
        with self._connect() as db:
            row = db.execute("SELECT workflow, step, outputs FROM step_cache WHERE key = ?", (key,)).fetchone()
        return (row[0], row[1], json.loads(row[2])) if row else None

    def remember(self, key: str, workflow: str, step: str, outputs: dict[str, Any]) -> None:
        """Record a successful step's outputs under its cache key (a later equal step reuses them)."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO step_cache (key, workflow, step, outputs, created_at) VALUES (?,?,?,?,?)",
                (key, workflow, step, json.dumps(outputs), time.time()),
            )

    def forget(self, key: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM step_cache WHERE key = ?", (key,))

    def all(self) -> list[WorkflowInfo]:
        """Every workflow with its steps, newest first, in two queries (not two per workflow)."""
        with self._connect() as db:
            rows = db.execute(f"SELECT {_INFO_COLUMNS} FROM workflows ORDER BY created_at DESC").fetchall()
            steps = db.execute("SELECT * FROM steps ORDER BY workflow, position").fetchall()
        by_workflow: dict[str, list[sqlite3.Row]] = {}
        for step in steps:
            by_workflow.setdefault(step["workflow"], []).append(step)
        return [_workflow(row, by_workflow.get(row["name"], [])) for row in rows]

    def names(self) -> list[str]:
        with self._connect() as db:
            return [r[0] for r in db.execute("SELECT name FROM workflows ORDER BY created_at DESC")]

    def runner(self, name: str) -> tuple[int | None, float | None]:
        with self._connect() as db:
            row = db.execute("SELECT runner_pid, runner_started FROM workflows WHERE name = ?", (name,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def step_processes(self, name: str) -> list[tuple[str, int, float | None, bool]]:
        """(step, pid, pid start time, is service) of every step that has a process recorded."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT name, pid, pid_started, service FROM steps WHERE workflow = ? AND pid IS NOT NULL", (name,)
            ).fetchall()
        return [(r[0], r[1], r[2], bool(r[3])) for r in rows]

    def update_workflow(self, name: str, **fields: Any) -> None:
        _check(fields, _WORKFLOW_FIELDS)
        with self._connect() as db:
            sets = ", ".join(f"{k} = ?" for k in fields)
            db.execute(f"UPDATE workflows SET {sets} WHERE name = ?", (*fields.values(), name))

    def update_step(self, workflow: str, step: str, **fields: Any) -> None:
        _check(fields, _STEP_FIELDS)
        for key in ("outputs", "addresses"):
            if key in fields:
                fields[key] = json.dumps(fields[key])
        with self._connect() as db:
            sets = ", ".join(f"{k} = ?" for k in fields)
            db.execute(f"UPDATE steps SET {sets} WHERE workflow = ? AND name = ?", (*fields.values(), workflow, step))

    def restart(self, name: str, steps: list[str], params: dict[str, str] | None = None) -> bool:
        """Failed -> Pending with `steps` reset (and `params` set), in one transaction; False if not Failed."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            changed = db.execute(
                "UPDATE workflows SET status = ?, message = '', finished_at = NULL WHERE name = ? AND status = ?",
                (PENDING, name, FAILED),
            ).rowcount
            if changed and params is not None:
                db.execute("UPDATE workflows SET params = ? WHERE name = ?", (json.dumps(params), name))
            if changed:
                db.executemany(
                    "UPDATE steps SET status = ?, message = '', started_at = NULL, finished_at = NULL "
                    "WHERE workflow = ? AND name = ?",
                    [(PENDING, name, step) for step in steps],
                )
            db.execute("COMMIT")
        return bool(changed)

    def delete(self, name: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM workflows WHERE name = ?", (name,))


def load_pipeline(state: StateStore, name: str, pipeline_name: str) -> tuple[Pipeline, list[str], bool]:
    """The pipeline a workflow was submitted with, its Python search path and its no-cache flag."""
    spec, no_cache = state.spec_text(name)
    if spec is None:  # recorded before specs were stored: one of the built-in pipelines
        from trainflow.pipelines.builtin import PIPELINES

        return PIPELINES[pipeline_name], [], no_cache
    from trainflow.pipelines import PipelineError

    try:
        pipeline, python_path = _recorded_pipeline(spec)
    except (ValueError, KeyError, TypeError, AttributeError, PipelineError) as exc:  # edited or damaged by hand
        raise WorkflowError(
            f"the recorded pipeline of workflow {name} is damaged ({type(exc).__name__}: {exc}); "
            f"`trainflow delete {name}` forgets the run"
        ) from None
    return pipeline, list(python_path), no_cache


@functools.lru_cache(maxsize=64)
def _recorded_pipeline(spec: str) -> tuple[Pipeline, tuple[str, ...]]:
    """A recorded spec's pipeline, read once per text: listing 1,000 runs of one pipeline decodes it once, not 1,000
    times (a Pipeline is frozen, so the runs can share it)."""
    from trainflow.pipelines.serial import from_dict

    data = json.loads(spec)
    return from_dict(data["pipeline"], check=False), tuple(data.get("python_path", []))


def _damaged(path: Path, why: str) -> WorkflowError:
    return WorkflowError(
        f"the workflow state in {path} is damaged ({why}): `sqlite3 {path} .recover` may save its runs; "
        "or move it aside and trainflow starts a new one"
    )


def already_exists(name: str) -> WorkflowError:
    return WorkflowError(
        f"a workflow named '{name}' already exists: `trainflow retry {name}` re-runs its failed steps, "
        f"`trainflow resubmit {name}` runs it again under a new name, `trainflow delete {name}` removes it"
    )


def _check(fields: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = set(fields) - set(allowed)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")


def _workflow(row: sqlite3.Row, steps: list[sqlite3.Row]) -> WorkflowInfo:
    return WorkflowInfo(
        name=row["name"],
        pipeline=row["pipeline"],
        status=row["status"],
        params=json.loads(row["params"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        message=row["message"],
        steps=[
            StepInfo(
                name=s["name"],
                status=s["status"] or PENDING,
                started_at=s["started_at"],
                finished_at=s["finished_at"],
                message=s["message"],
                outputs=json.loads(s["outputs"] or "{}"),
                service=bool(s["service"]),
                addresses=json.loads(s["addresses"] or "{}"),
            )
            for s in steps
        ],
    )


def now() -> float:
    return time.time()
