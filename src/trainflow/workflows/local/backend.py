"""The local backend: workflows recorded in SQLite, each run by a detached runner process."""

from __future__ import annotations

import builtins
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainflow.workflows.backend import (
    FAILED,
    FINISHED,
    OMITTED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    SUSPENDED,
    Reached,
    StepInfo,
    Submission,
    WorkflowInfo,
)
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.local.layout import Layout
from trainflow.workflows.local.runner_lock import LOCK_FD_ENV, RunnerLock
from trainflow.workflows.local.scheduling import LocalSchedules
from trainflow.workflows.local.state import StateStore, already_exists, load_pipeline, now

# Reading runs back (`trainflow list`, `get`) loads none of what submitting, planning or stopping a run needs: those
# operations import it as they start.
if TYPE_CHECKING:
    from trainflow.pipelines import Pipeline
    from trainflow.workflows.doctor import Check

_ACTIVE = (PENDING, RUNNING, SUSPENDED)


class LocalBackend(LocalSchedules):
    """Runs workflows on this machine; state and logs under `$TRAINFLOW_HOME`."""

    name = "local"
    poll_seconds = 0.1  # a read is one SQLite query: `--wait` sees a ready server within 0.1 s
    services_listen_here = True

    def __init__(self, home: Path) -> None:
        self.layout = Layout(home)
        self._upstreams: dict[int, tuple[Pipeline, dict[str, tuple[str, ...]]]] = {}  # by id(pipeline), held

    @cached_property
    def state(self) -> StateStore:
        """The run records, opened on first use (`doctor` checks a home it cannot open)."""
        return StateStore(self.layout.db)

    @property
    def flags(self) -> str:
        return ""  # the default backend

    # -- submit --------------------------------------------------------------------------------
    def _check_functions(self, pipeline: Pipeline, python_path: list[str] | None) -> None:
        """The steps' functions import here, from `python_path` (a pipeline file's folder)."""
        from trainflow.pipelines import PipelineError
        from trainflow.pipelines.loading import check_functions

        try:
            check_functions(pipeline, python_path)
        except PipelineError as exc:
            raise WorkflowError(exc.message) from None

    def _complete(self, pipeline: Pipeline, values: dict[str, str]) -> dict[str, str]:
        """Each empty parameter that declares a local store gets its folder under this machine's store."""
        from trainflow.workflows.params import local_store_values

        return local_store_values(pipeline, values, str(self.layout.store_root))

    def _unnamed(self, pipeline: Pipeline) -> str:
        import secrets

        return f"{pipeline.name}-{secrets.token_hex(3)}"

    def _dryrun(self, run: Submission) -> dict[str, Any]:
        """The resolved plan: the run's name and values, and each step instance's command and the ones it waits for."""
        from trainflow.workflows.local import plan

        plan.artifacts_base(run.pipeline, run.values, self.layout.default_artifacts)
        return {
            "name": run.name,
            "pipeline": run.pipeline.name,
            "values": run.values,
            "steps": plan.dry_plan(run.pipeline, run.values),
        }

    def _start(self, run: Submission) -> WorkflowInfo:
        """Record the run and start its runner; returns at once (the runner works in the background)."""
        from trainflow.pipelines.serial import to_dict
        from trainflow.workflows.local import plan

        pipeline, values, python_path = run.pipeline, run.values, run.python_path
        plan.artifacts_base(pipeline, values, self.layout.default_artifacts)  # a bad URL fails here, not in the runner
        steps = [StepInfo(i, service=s.service) for s in pipeline.all_steps for i in plan.instance_names(s, values)]
        assert run.name is not None  # _unnamed names every run
        info = WorkflowInfo(
            name=run.name, pipeline=pipeline.name, status=PENDING, params=values, created_at=now(), steps=steps
        )
        spec = {"pipeline": to_dict(pipeline), "python_path": [str(Path(p).resolve()) for p in python_path]}
        with self.state.held():  # one connection: no checkpoint (and sync) between the record and the runner's start
            with self._runner_lock(info.name, busy=already_exists(info.name)) as lock:
                self.state.create(info, spec, run.no_cache)
                self._spawn_runner(info.name, lock)
            return self.get(info.name)

    @contextmanager
    def _runner_lock(self, name: str, busy: WorkflowError) -> Iterator[RunnerLock]:
        """Hold the workflow's runner lock (raising `busy` if a runner or another command has it)."""
        lock = RunnerLock(self.layout.runner_lock(name))
        if not lock.acquire(wait=1.0):
            raise busy
        try:
            yield lock
        finally:
            self._release(lock, name)

    def _release(self, lock: RunnerLock, name: str) -> None:
        """Let go of the runner lock; if the workflow was deleted meanwhile (or never recorded), leave no file behind."""
        gone = name not in self.state.names()
        lock.release(remove=gone)
        if gone:
            with suppress(OSError):
                self.layout.workflow_dir(name).rmdir()

    def _spawn_runner(self, name: str, lock: RunnerLock) -> None:
        """Start the runner, handing it our hold on the runner lock (and, as MLflow's variables, the run's tracking
        parameters: a retry tracks where the run did, whatever this shell has set)."""
        from trainflow.pipelines.roles import param_types
        from trainflow.workflows.local import processes
        from trainflow.workflows.tracking_settings import tracking_variables

        assert lock.fd is not None
        info = self.state.get(name)
        pipeline, _, _ = load_pipeline(self.state, name, info.pipeline)
        env = {
            **os.environ,
            **tracking_variables(param_types(pipeline), info.params),
            "TRAINFLOW_HOME": str(self.layout.home),
            LOCK_FD_ENV: str(lock.fd),
            processes.WORKFLOW_ENV: str(self.layout.workflow_dir(name)),
        }
        argv = [sys.executable, "-m", "trainflow", "workflow-runner", name]
        proc = processes.start(argv, self.layout.runner_log(name), env=env, pass_fds=[lock.fd])
        self.state.update_workflow(name, runner_pid=proc.pid, runner_started=processes.started_at(proc.pid))

    # -- read ----------------------------------------------------------------------------------
    def get(self, name: str) -> WorkflowInfo:
        return self._described(self.state.get(name))

    def list(self) -> list[WorkflowInfo]:
        with self.state.held():  # one connection for the whole listing
            return [self._described(info) for info in self.state.all()]

    def list_brief(self) -> builtins.list[WorkflowInfo]:
        """Every run as recorded (reconciled if its runner died), no pipeline decoded: with 1,000 runs, decoding took
        longer than reading them."""
        with self.state.held():
            infos = self.state.all()
            return [self.state.get(i.name) if i.status in _ACTIVE and self._reconcile(i) else i for i in infos]

    def _described(self, info: WorkflowInfo) -> WorkflowInfo:
        """A recorded run, reconciled if its runner died, with each step's dependencies, kind and roles."""
        from trainflow.pipelines.roles import param_types, provided

        name = info.name
        if info.status in _ACTIVE and self._reconcile(info):
            info = self.state.get(name)
        pipeline, _, _ = load_pipeline(self.state, name, info.pipeline)
        recorded = [s.name for s in info.steps]
        if any("[" in n for n in recorded):  # a fan-out expanded into instances
            from trainflow.workflows.local.fanout import instances_in

            instances = {s.name: instances_in(s.name, recorded) for s in pipeline.all_steps}
        else:
            instances = {s.name: [s.name] for s in pipeline.all_steps}
        upstream = self._upstream(pipeline)
        info.param_types = param_types(pipeline)
        for step in pipeline.all_steps:
            for instance in instances[step.name]:
                found = info.step(instance)
                if found is not None:
                    found.depends = [i for d in upstream[step.name] for i in instances[d]]
                    found.kind, found.provides = step.kind, provided(step)
        return info

    def _upstream(self, pipeline: Pipeline) -> dict[str, tuple[str, ...]]:
        """Each step's upstream steps, worked out once per pipeline: the runs a listing reads share their pipeline
        (state.load_pipeline decodes a spec once), and finding a step's references took a third of listing 1,000."""
        held = self._upstreams.get(id(pipeline))
        if held is None:
            if len(self._upstreams) >= 64:  # a dashboard lives long: bound what it keeps
                self._upstreams.clear()
            held = self._upstreams[id(pipeline)] = (pipeline, {s.name: s.upstream() for s in pipeline.all_steps})
        return held[1]

    def _reconcile(self, info: WorkflowInfo) -> bool:
        """A workflow whose runner died (kill -9, reboot) is Failed, and its step processes stopped.

        False when its runner is alive (or starting): its state is as read.
        """
        from trainflow.workflows.local import processes

        lock = RunnerLock(self.layout.runner_lock(info.name))
        if processes.alive(*self.state.runner(info.name)) or not lock.acquire():
            return False  # a runner holds the lock, or a command starting one does
        try:
            self._fail_dead_runner(info.name)
        finally:
            self._release(lock, info.name)
        return True

    def _fail_dead_runner(self, name: str) -> None:
        """With the runner lock held: a workflow still active has lost its runner; fail it, stop its steps."""
        from trainflow.workflows.local import ending, processes

        info = self.state.get(name)
        if info.status not in _ACTIVE:
            return
        pid, _ = self.state.runner(name)
        for step, spid, sstarted, _service in self.state.step_processes(info.name):
            current = info.step(step)
            if current and current.status == RUNNING:
                processes.stop_group(spid, sstarted)
                self.state.update_step(
                    info.name, step, status=FAILED, finished_at=now(), pid=None, message="interrupted: the runner died"
                )
        self.state.update_workflow(
            info.name,
            status=FAILED,
            finished_at=now(),
            message=f"the runner process ({pid}) died; `trainflow retry {info.name}` resumes from the interrupted step",
        )
        ending.end_abandoned(self.layout.workflow_dir(info.name))  # its MLflow run ends KILLED, if it has one

    def logs(self, name: str, step: str | None = None, follow: bool = False) -> Iterator[str]:
        """Lines of the step logs, prefixed with the step name; with `follow`, until the workflow ends."""
        info = self.get(name)
        names = [s.name for s in info.steps]
        if step is not None and step not in names:
            raise WorkflowError(f"workflow {name} has no step '{step}': its steps are {', '.join(names)}")
        wanted = [step] if step else names
        offsets = {s: 0 for s in wanted}
        while True:
            for s in wanted:
                path = self.layout.workflow_dir(name) / f"{s}.log"
                if not path.exists():
                    continue
                with open(path, "rb") as f:
                    f.seek(offsets[s])
                    chunk = f.read()
                complete = chunk[: chunk.rfind(b"\n") + 1]
                offsets[s] += len(complete)
                for line in complete.decode(errors="replace").splitlines():
                    yield f"{s}: {line}"
            if not follow or self.get(name).status in FINISHED:
                return
            time.sleep(0.3)

    def services(self) -> builtins.list[tuple[WorkflowInfo, StepInfo]]:
        """Running services: (workflow, step) for each live TensorBoard and model server."""
        return [(info, s) for info in self.list() for s in self._live_services(info)]

    def _live_services(self, info: WorkflowInfo) -> builtins.list[StepInfo]:
        """The steps of a run that are services and still running."""
        from trainflow.workflows.local import processes

        live = {
            s
            for s, pid, started, service in self.state.step_processes(info.name)
            if service and processes.alive(pid, started)
        }
        return [s for s in info.steps if s.name in live and s.status == SUCCEEDED]

    def _listening(self, workflow: str, serves: str) -> Reached | None:
        """The live service of `workflow` declared to serve `serves` (the last one up), where it listens: only that
        run is read (`predict --workflow`, `tensorboard NAME` read every run before, 1,000 runs' pipelines decoded)."""
        if workflow not in self.state.names():
            return None  # `forward` says it serves nothing here
        live = [s for s in self._live_services(self.get(workflow)) if s.provides.get("serves") == serves]
        return Reached(live[-1].name, dict(live[-1].addresses)) if live and live[-1].addresses else None

    def checks(self, secret: str) -> builtins.list[Check]:
        """What a local run needs on this machine (`secret` is a cluster's)."""
        from trainflow.workflows.local.doctor import local_checks

        return builtins.list(local_checks(self.layout.home))

    # -- change --------------------------------------------------------------------------------
    def stop(self, name: str) -> WorkflowInfo:
        """Stop a running workflow: its running steps end, services already started stay."""
        from trainflow.workflows.local import processes

        info = self.get(name)
        if info.status not in _ACTIVE:
            raise WorkflowError(f"workflow {name} is {info.status}, not running")
        pid, started = self.state.runner(name)
        processes.stop_group(pid, started, grace=30)
        return self.get(name)

    def suspend(self, name: str) -> WorkflowInfo:
        """Start no new step until `resume` (running steps finish); the state shows Suspended."""
        return self._suspension(name, SUSPENDED, (PENDING, RUNNING), "running")

    def resume(self, name: str) -> WorkflowInfo:
        """Let a suspended workflow start steps again."""
        return self._suspension(name, RUNNING, (SUSPENDED,), "suspended")

    def _suspension(self, name: str, status: str, allowed: tuple[str, ...], what: str) -> WorkflowInfo:
        from trainflow.workflows.local import processes

        info = self.get(name)
        if not self.state.set_status(name, status, allowed):
            raise WorkflowError(f"workflow {name} is {info.status}, not {what}")
        pid, started = self.state.runner(name)
        if processes.alive(pid, started):
            assert pid is not None
            os.kill(pid, processes.SUSPEND_SIGNAL)  # the runner reads the status again between steps
        return self.get(name)

    def retry(self, name: str, values: Mapping[str, str] | None = None) -> WorkflowInfo:
        """Re-run a failed workflow from its failed steps, keeping the successful ones.

        `values` override parameters: the steps that read a changed one, and those after them, run again.
        """
        from trainflow.workflows.local import processes

        params, reached = self._overridden(self.state.get(name), values or {})
        running = WorkflowError(
            f"workflow {name} is already running: `trainflow get {name}` shows its progress, "
            f"`trainflow stop {name}` stops it"
        )
        with self._runner_lock(name, busy=running) as lock:
            self._fail_dead_runner(name)
            info = self.state.get(name)
            if info.status != FAILED:
                raise WorkflowError(f"workflow {name} is {info.status}: only a Failed workflow can be retried")
            live = {s: (p, t) for s, p, t, _ in self.state.step_processes(name) if processes.alive(p, t)}
            reset = [
                s.name
                for s in info.steps
                if s.status in (FAILED, OMITTED, PENDING, RUNNING)
                or (s.service and s.status == SUCCEEDED and s.name not in live)
                or s.name in reached
            ]
            for step in set(reset) & live.keys():  # a service the new values reach starts again with them
                processes.stop_group(*live[step])
            if not self.state.restart(name, reset, params if values else None):
                raise WorkflowError(f"workflow {name} is {info.status}: only a Failed workflow can be retried")
            self._spawn_runner(name, lock)
        return self.get(name)

    def _overridden(self, info: WorkflowInfo, overrides: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
        """A run's parameters with `overrides` checked and applied, and the step instances the change reaches."""
        from trainflow.workflows.local import plan

        if not overrides:
            return dict(info.params), set()
        pipeline, _, _ = load_pipeline(self.state, info.name, info.pipeline)
        key = pipeline.name_param
        if key is not None and key in overrides and overrides[key] != info.params.get(key):
            raise WorkflowError(
                f"retry keeps the run's {key}: `trainflow resubmit {info.name} -p {key}=...` runs it under a new one"
            )
        params = self.completed(pipeline, {**info.params, **overrides}, overrides)
        if any(plan.instance_names(s, params) != plan.instance_names(s, info.params) for s in pipeline.steps):
            raise WorkflowError(
                f"these values change which step instances run: `trainflow resubmit {info.name} -p ...` instead"
            )
        changed = {k for k, v in params.items() if info.params.get(k) != v}
        reached = plan.reached_by(pipeline, changed)
        return params, {i for s in pipeline.steps if s.name in reached for i in plan.instance_names(s, params)}

    def resubmit(
        self, name: str, new_name: str | None = None, no_cache: bool = False, values: Mapping[str, str] | None = None
    ) -> WorkflowInfo:
        """Run a workflow again under a new name, `values` overriding its parameters.

        Cacheable steps reuse this run's outputs unless `no_cache` (or a changed value reaches them).
        """
        import secrets

        info = self.get(name)
        pipeline, python_path, _ = load_pipeline(self.state, name, info.pipeline)
        overrides = dict(values or {})
        params = {**info.params, **overrides}
        if pipeline.name_param is not None:
            chosen = new_name or overrides.get(pipeline.name_param)
            params[pipeline.name_param] = chosen or f"{info.params[pipeline.name_param][:56]}-{secrets.token_hex(3)}"
        elif new_name:
            raise WorkflowError(f"{pipeline.name} names its runs itself: resubmit without --job-name")
        return self.submit(pipeline, params, no_cache, python_path)

    def progress(self, name: str, step: str) -> builtins.list[dict[str, Any]]:
        """The progress events step `step` of workflow `name` reported, oldest first."""
        from trainflow.progress import read_progress

        return read_progress(self.layout.progress_file(name, step))

    def delete(self, name: str) -> None:
        """Stop everything a workflow runs, services included, and forget it (its models stay)."""
        import shutil

        self.state.get(name)
        lock = RunnerLock(self.layout.runner_lock(name))
        for _ in range(5):  # a retry may be starting a runner: stop it too, until we hold the lock
            self._stop_processes(name)
            if lock.acquire(wait=1.0):
                break
        else:
            raise WorkflowError(
                f"cannot stop the runner of workflow {name}: see `ps -ef | grep 'workflow-runner {name}'`"
            )
        try:
            self._stop_processes(name)  # anything started before we held the lock
            self.state.delete(name)
            shutil.rmtree(self.layout.workflow_dir(name), ignore_errors=True)
        finally:
            lock.release()

    def _stop_processes(self, name: str) -> None:
        """Stop the runner, the steps, what they started and the services of a workflow, recorded or not."""
        from trainflow.workflows.local import processes

        processes.stop_all(processes.workflow_processes(self.layout.workflow_dir(name), name, self.layout.home))
