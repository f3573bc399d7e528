"""The local scheduler: fires each active schedule at its due times, through the local backend's `submit`.

Each due time is claimed in the state before its run is submitted (`ScheduleStore.claim`), so a scheduler killed
and restarted never fires one twice; a restarted scheduler starts the latest run that fell due while it was down,
if that is no older than the schedule's starting deadline (at most one, as Argo's CronWorkflow controller does).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from trainflow.errors import TrainflowError
from trainflow.pipelines.serial import from_dict
from trainflow.workflows.backend import PENDING, RUNNING
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.local.backend import LocalBackend
from trainflow.workflows.local.schedule_state import ScheduleStore, Stored
from trainflow.workflows.local.scheduler_process import LOCK_FILE, announce
from trainflow.workflows.schedules import NOT_STARTED, REPLACED, SKIPPED, STARTED, run_name

log = logging.getLogger(__name__)
TICK = 1.0  # the longest sleep between two looks at the schedules (a new or resumed one is seen within it)
SLACK = 2.0  # seconds a due time may be late and still be on time (the scheduler's own latency)
IDLE_EXIT = 10.0  # with no active schedule for this long, the scheduler exits (the next `create` starts one)


def serve(home: Path) -> int:
    """Run the scheduler of `home` until no schedule is active; 0 at once if another one runs."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(home / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("a scheduler already runs for %s", home)
        return 0
    try:
        announce(home)
        backend = LocalBackend(home)
        store = ScheduleStore(backend.layout.db)
        log.info("scheduler started (pid %d)", os.getpid())
        idle_since: float | None = None
        while True:
            _reap()
            active = store.names(active_only=True)
            if not active:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > IDLE_EXIT:
                    log.info("no active schedule: the scheduler stops")
                    return 0
            else:
                idle_since = None
            soonest = tick(backend, store, active)
            time.sleep(min(max(soonest - time.time(), 0.05), TICK))
    finally:
        lock.release()


def tick(backend: LocalBackend, store: ScheduleStore, names: list[str]) -> float:
    """Fire every schedule in `names` that is due now; the time the next one falls due."""
    soonest = time.time() + TICK
    for name in names:
        try:
            schedule = store.stored(name)
            if schedule.next_due <= time.time():
                fire(backend, store, schedule, time.time())
                schedule = store.stored(name)
        except WorkflowError as exc:  # deleted while we looked, or the state is unusable for now
            log.warning("schedule %s: %s", name, exc)
            continue
        soonest = min(soonest, schedule.next_due)
    return soonest


def fire(backend: LocalBackend, store: ScheduleStore, schedule: Stored, now: float) -> None:
    """Claim the latest due time of `schedule` up to `now` (within its deadline), then start, skip or replace."""
    when = schedule.when
    earliest = now - when.starting_deadline - SLACK
    due = when.last_at_or_before(now, max(schedule.next_due - 1e-3, earliest), schedule.anchor)
    following = when.next_after(now, schedule.anchor)
    workflow = run_name(schedule.name, due) if due is not None else ""
    if not store.claim(schedule.name, schedule.next_due, due, following, workflow, now):
        return  # suspended, deleted or changed meanwhile
    if due is None:
        log.info(
            "schedule %s: the runs due while it was down are past their deadline; next at %s", schedule.name, following
        )
        return
    running = [w for w in store.active_runs(schedule.name) if w != workflow and _active(backend, w)]
    outcome = STARTED
    if running and schedule.policy == "Forbid":
        store.record(schedule.name, due, SKIPPED, f"{running[0]} is still running (concurrency policy Forbid)")
        log.info("schedule %s: skipped %s, %s still runs", schedule.name, workflow, running[0])
        return
    if running and schedule.policy == "Replace":
        for name in running:
            with contextlib.suppress(WorkflowError):  # it ended meanwhile
                backend.stop(name)
        outcome = REPLACED
    try:
        pipeline = from_dict(schedule.spec["pipeline"], check=False)
        path = list(schedule.spec.get("python_path", []))
        backend.submit(pipeline, schedule.params, bool(schedule.spec.get("no_cache")), path, name=workflow)
    except TrainflowError as exc:
        store.record(schedule.name, due, NOT_STARTED, exc.message)
        log.warning("schedule %s: %s not started: %s", schedule.name, workflow, exc.message)
        return
    except Exception as exc:  # recorded and logged with its traceback; the other schedules go on
        store.record(schedule.name, due, NOT_STARTED, f"{type(exc).__name__}: {exc}")
        log.exception("schedule %s: %s not started", schedule.name, workflow)
        return
    message = f"replaced {', '.join(running)}" if outcome == REPLACED else ""
    store.record(schedule.name, due, outcome, message)
    log.info("schedule %s: started %s", schedule.name, workflow)


def _active(backend: LocalBackend, name: str) -> bool:
    try:
        return backend.get(name).status in (PENDING, RUNNING)
    except WorkflowError:  # deleted
        return False


def _reap() -> None:
    """Collect the runners this process started that have ended (each submit starts one and does not wait)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
