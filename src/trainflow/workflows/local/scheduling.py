"""The local backend's schedule operations: kept in the state database, fired by the scheduler process."""

from __future__ import annotations

import builtins
import time
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainflow.workflows.backend import Backend
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.local.layout import Layout

if TYPE_CHECKING:  # loaded by the schedule operations: a command reading runs back (`list`, `get`) needs none
    from trainflow.pipelines import Pipeline
    from trainflow.workflows.local.schedule_state import ScheduleStore
    from trainflow.workflows.schedules import ScheduleInfo, ScheduleRequest


class LocalSchedules(Backend):
    """The schedule operations of `LocalBackend`, which derives from this (they need its `layout`)."""

    layout: Layout

    @cached_property
    def schedule_store(self) -> ScheduleStore:
        from trainflow.workflows.local.schedule_state import ScheduleStore

        return ScheduleStore(self.layout.db)

    def create_schedule(
        self,
        request: ScheduleRequest,
        pipeline: Pipeline,
        values: Mapping[str, str],
        python_path: builtins.list[str] | None = None,
    ) -> ScheduleInfo:
        """Record the schedule (its pipeline checked and its values resolved now, as a run's), start the scheduler."""
        from trainflow.pipelines.serial import to_dict
        from trainflow.workflows.schedules import ScheduleInfo, check_name, check_policy

        check_name(request.name)
        check_policy(request.policy)
        run = self.prepare(pipeline, values, python_path=python_path, name=request.name)
        now = time.time()
        info = ScheduleInfo(
            name=request.name,
            pipeline=pipeline.name,
            schedule=request.when.text(),
            timezone=request.when.timezone,
            concurrency_policy=request.policy,
            suspended=False,
            params=run.values,
            created_at=now,
        )
        spec = {
            "pipeline": to_dict(pipeline),
            "python_path": [str(Path(p).resolve()) for p in run.python_path],
            "no_cache": request.no_cache,
        }
        self.schedule_store.create(info, request.when, spec, now, request.when.next_after(now, now))
        self._scheduler()
        return self.schedule(request.name)

    def dryrun_schedule(
        self,
        request: ScheduleRequest,
        pipeline: Pipeline,
        values: Mapping[str, str],
        python_path: builtins.list[str] | None = None,
    ) -> dict[str, Any]:
        """The schedule as the scheduler would keep it, and the resolved plan of each of its runs."""
        from trainflow.workflows.schedules import check_name, check_policy

        check_name(request.name)
        check_policy(request.policy)
        now = time.time()
        return {
            "schedule": request.when.text(),
            "timezone": request.when.timezone,
            "concurrency_policy": request.policy,
            "starting_deadline": request.when.starting_deadline,
            "next_run_at": request.when.next_after(now, now),
            "run": self.dryrun(pipeline, values, request.no_cache, python_path),
        }

    def schedules(self) -> builtins.list[ScheduleInfo]:
        found = self.schedule_store.all()
        if found:
            self._scheduler()
        return found

    def schedule(self, name: str) -> ScheduleInfo:
        info = self.schedule_store.info(name)
        self._scheduler()
        return info

    def delete_schedule(self, name: str) -> None:
        self.schedule_store.delete(name)

    def suspend_schedule(self, name: str, suspended: bool = True) -> ScheduleInfo:
        """Suspend, or resume from the next due time after now (what fell due while suspended does not run)."""
        stored = self.schedule_store.stored(name)
        following = None if suspended else stored.when.next_after(time.time(), stored.anchor)
        self.schedule_store.set_suspended(name, suspended, following)
        if not suspended:
            self._scheduler()
        return self.schedule_store.info(name)

    def own_services(self) -> builtins.list[dict[str, Any]]:
        """The scheduler, (re)started here while any schedule is active (a killed one comes back on this call)."""
        found = self._scheduler()
        if found is None:
            return []
        active = len(self.schedule_store.names(active_only=True))
        return [{"service": "scheduler", "pid": found["pid"], "schedules": active, "log": found["log"]}]

    def _scheduler(self) -> dict[str, Any] | None:
        """The running scheduler, started when a schedule is active and none runs (after a crash or a kill)."""
        from trainflow.workflows.local import scheduler_process

        if not self.schedule_store.names(active_only=True):
            return scheduler_process.running(self.layout.home)
        found = scheduler_process.ensure(self.layout.home)
        if found is None:
            raise WorkflowError(f"the scheduler did not start: see {self.layout.home / scheduler_process.LOG_FILE}")
        return found
