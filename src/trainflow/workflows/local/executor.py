"""The detached process that runs one workflow's steps: `trainflow workflow-runner NAME`.

It launches every step whose dependencies are done, each in its own process group with
`$TRAINFLOW_OUTPUTS` (where it writes outputs) and `$TRAINFLOW_PROGRESS` (where it appends progress
events) set; reuses an earlier run's outputs for a cacheable step whose cache key matches; retries
failures the step's `retry_on` allows after its backoff; stops a step past its timeout; and on the way
out stops whatever non-service step is still running, then runs the exit steps (see `ending`). Services are
left running once ready: they outlive the workflow. What a step is comes from its kind. A fan-out runs at most
its `parallelism` items at once (see `fanout`), the whole run at most the pipeline's; while the workflow is
Suspended (`trainflow suspend`) running steps finish and no new one starts.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trainflow.pipelines import Service, Step
from trainflow.pipelines.conditions import parse_condition
from trainflow.pipelines.refs import OutputRef, ParamRef, Ref
from trainflow.workflows.backend import (
    CACHED,
    DONE,
    FAILED,
    OMITTED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    SUSPENDED,
)
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.local import ending, plan, processes
from trainflow.workflows.local.cache_keys import StepKey, StepKeys
from trainflow.workflows.local.commands import as_text, step_command
from trainflow.workflows.local.fanout import FanOut
from trainflow.workflows.local.layout import Layout
from trainflow.workflows.local.runner_lock import LOCK_FD_ENV, RunnerLock
from trainflow.workflows.local.services import Readiness, choose_ports
from trainflow.workflows.local.state import StateStore, load_pipeline, now
from trainflow.workflows.local.step_launch import Launcher
from trainflow.workflows.local.wakeup import Wakeup

log = logging.getLogger(__name__)
_SERVICE_POLL = 0.005  # between checks of a starting service's outputs (its probe has its own pace)
_IDLE = 1.0  # the longest sleep: a step's exit and a stop signal wake the runner at once anyway


@dataclass
class _Running:
    step: Step
    instance: str
    proc: subprocess.Popen[bytes]
    started: float
    attempt: int
    key: StepKey | None
    item: str | None = None
    inputs: dict[str, dict[str, object]] = field(default_factory=dict)
    readiness: Readiness | None = None


class Executor:
    """Runs the pending steps of one recorded workflow to completion."""

    def __init__(self, layout: Layout, name: str, state: StateStore) -> None:
        self.layout = layout
        self.state = state
        self.name = name
        info = self.state.get(name)
        self.pipeline, self.python_path, self.no_cache = load_pipeline(self.state, name, info.pipeline)
        sys.path[:0] = [p for p in self.python_path if p not in sys.path]
        self.values = info.params
        self.first_started = info.started_at  # a retry continues the workflow: its duration runs from the first start
        # Only the holder of the runner lock runs steps, so a step another runner left Running is not running.
        self.status = {s.name: PENDING if s.status == RUNNING else s.status for s in info.steps}
        self.exits = {s.name for s in self.pipeline.on_exit}
        self.status.update(dict.fromkeys(self.exits, PENDING))  # they run at the end of every attempt
        self.outputs = {s.name: s.outputs for s in info.steps if s.status in DONE}
        self.plan = FanOut(self.pipeline, self.values, self.status)
        for step in self.pipeline.steps:
            if isinstance(step.for_each, OutputRef) and step.name not in self.plan.waiting:
                self._refill(step)
        self.suspended = False
        self.recheck = False
        self.outcome: dict[str, str] | None = None  # the run's outcome, once exit steps may read it
        self.on_end: Callable[[str, bool], object] = lambda status, stopped: None  # tracking: told the outcome first
        code = _package_of(self.python_path, layout.home)
        self.keys = StepKeys(self.pipeline, self.values, self.python_path, layout.home, code)
        base = plan.artifacts_base(self.pipeline, self.values, layout.default_artifacts)
        self.launcher = Launcher(layout, name, base, self.python_path, code)
        self.order = self.pipeline.order()  # computed once: the loop below runs every few milliseconds
        self.upstream = {s.name: s.upstream() for s in self.pipeline.all_steps}
        self.attempts: dict[str, int] = {}
        self.not_before: dict[str, float] = {}
        self.running: dict[str, _Running] = {}
        self.stopping = False

    def run(self) -> str:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(processes.SUSPEND_SIGNAL, self._on_suspension)
        self.suspended = self.state.status(self.name) == SUSPENDED  # a suspend sent before the handler was there
        self.first_started = self.first_started or now()
        for name in self.exits:
            self._set(name, PENDING, message="", started_at=None, finished_at=None)
        self.state.update_workflow(
            self.name,
            status=SUSPENDED if self.suspended else RUNNING,
            started_at=self.first_started,
            finished_at=None,
            message="",
            runner_pid=os.getpid(),
            runner_started=processes.started_at(os.getpid()),
        )
        try:
            with Wakeup() as wakeup:
                self._loop(wakeup, lambda: not self.stopping)
                self._stop_running("by user" if self.stopping else "the workflow ended")
                ended = self._end_steps()
                if self.exits:
                    self.outcome = ended.values(self.name, self.pipeline.name, self.first_started)
                    self.order = self.pipeline.exit_order()
                    self._loop(wakeup, lambda: True)
        finally:
            self._stop_running("by user" if self.stopping else "the workflow ended")
        return self._finish(ended)

    def _loop(self, wakeup: Wakeup, going: Callable[[], bool]) -> None:
        while going() and (self._launch_ready() or self.running):
            if not self._poll():
                wakeup.wait(self._next_check())

    def _next_check(self) -> float:
        """Seconds until something needs a look that no signal announces: a starting service, a timeout, a retry."""
        moment = time.monotonic()
        deadlines = [moment + _IDLE]
        for run in self.running.values():
            if run.readiness is not None:
                deadlines.append(moment + _SERVICE_POLL)
            if run.step.timeout:
                deadlines.append(run.started + run.step.timeout)
        deadlines += [t for i, t in self.not_before.items() if self.status[i] == PENDING]
        return min(deadlines) - moment

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _on_suspension(self, signum: int, frame: object) -> None:
        self.recheck = True  # `trainflow suspend/resume` changed the recorded status: read it between steps

    def _set(self, instance: str, status: str, **fields: object) -> None:
        self.status[instance] = status
        self.state.update_step(self.name, instance, status=status, **fields)

    # -- what can start ------------------------------------------------------------------------
    def _launch_ready(self) -> bool:
        """Start every step instance that can start; True if any step can still make progress."""
        if self.recheck:
            self.recheck = False
            self.suspended = self.state.status(self.name) == SUSPENDED
        if self.suspended and self.outcome is None:
            return True
        progress = False
        running = Counter(run.step.name for run in self.running.values())
        for step in self.order:
            pending = [i for i in self.plan.instances[step.name] if self.status[i] == PENDING]
            if not pending:
                continue
            deps = [self.plan.state_of(d, self.status) for d in self.upstream[step.name]]
            if any(d in (FAILED, OMITTED) for d in deps):
                for i in pending:
                    self._set(i, OMITTED, message="a step it depends on failed")
            elif any(d in (RUNNING, PENDING) for d in deps):
                progress = True
            elif SKIPPED in deps:  # as on Argo, where a step waits for its upstream steps to succeed
                skipped = next(d for d in self.upstream[step.name] if self.plan.state_of(d, self.status) == SKIPPED)
                for i in pending:
                    self._set(i, SKIPPED, message=f"{skipped} was skipped", finished_at=now())
            elif not self._condition_holds(step):
                for i in pending:
                    self._set(i, SKIPPED, message=f"{step.when} is false", finished_at=now())
            elif step.name in self.plan.waiting and not self._expand(step):
                continue
            else:
                room = self.plan.room(step, running, self.pipeline.parallelism)
                for index, instance in enumerate(self.plan.instances[step.name]):
                    if room <= 0:
                        break
                    if self.status[instance] == PENDING and self.not_before.get(instance, 0) <= time.monotonic():
                        self._start(step, instance, self.plan.items[step.name][index])
                        if instance in self.running:
                            running[step.name] += 1
                            room -= 1
                progress = True
        return progress

    def _refill(self, step: Step) -> None:
        """A retried run's expanded fan-out: its items again, or (its source runs again) one waiting row."""
        assert isinstance(step.for_each, OutputRef)
        source = step.for_each
        done = self.plan.state_of(source.step, self.status) in DONE
        if done and self.plan.refill(step, self.plan.gathered(self.outputs, source.step).get(source.key)):
            return
        former = self.plan.fold(step)
        self.state.replace_steps(self.name, former, [step.name])
        for name in former:
            self.status.pop(name, None)
            self.outputs.pop(name, None)
        self.status[step.name] = PENDING

    def _expand(self, step: Step) -> bool:
        """Expand a fan-out over an earlier step's output; True when it has items to start."""
        assert isinstance(step.for_each, OutputRef)
        source = step.for_each
        try:
            names = self.plan.expand(step, self.plan.gathered(self.outputs, source.step).get(source.key))
        except WorkflowError as exc:
            self._set(step.name, FAILED, message=exc.message, started_at=now(), finished_at=now())
            return False
        if not names:  # as a fan-out's outputs are lists over its items, an empty one's are empty lists
            outputs: dict[str, object] = {k: [] for k in step.declared_outputs()}
            self.outputs[step.name] = outputs
            self._set(step.name, SUCCEEDED, outputs=outputs, started_at=now(), finished_at=now(), message="no items")
            return False
        self.state.replace_steps(self.name, [step.name], names)
        del self.status[step.name]
        self.status.update(dict.fromkeys(names, PENDING))
        return True

    def _condition_holds(self, step: Step) -> bool:
        if not step.when:
            return True

        def resolve(ref: Ref) -> str:
            if isinstance(ref, ParamRef):
                return self.values[ref.name]
            assert isinstance(ref, OutputRef)
            return as_text(self.plan.gathered(self.outputs, ref.step).get(ref.key, ""))

        return parse_condition(step.when).evaluate(resolve)

    # -- start ---------------------------------------------------------------------------------
    def _start(self, step: Step, instance: str, item: str | None) -> None:
        done = [d for d in self.upstream[step.name] if self.plan.state_of(d, self.status) in DONE]
        outputs = {d: self.plan.gathered(self.outputs, d) for d in done}  # what its command may read: upstream
        key = None if step.name in self.exits else self.keys.make(step, item, outputs)
        if key is not None and not self.no_cache and self._reuse(step, instance, key.value):
            return
        self._launch(step, instance, item, outputs, key)

    def _reuse(self, step: Step, instance: str, key: str) -> bool:
        found = self.state.cached(key)
        if found is None:
            return False
        workflow, source_step, outputs = found
        if not plan.artifacts_unchanged(step, outputs, self.keys.memo):
            self.state.forget(key)
            return False
        self.outputs[instance] = outputs
        self.keys.record(step.name, instance, self.plan.instances[step.name], key)
        self._set(
            instance,
            CACHED,
            outputs=outputs,
            started_at=now(),
            finished_at=now(),
            message=f"cached: outputs of {workflow}/{source_step}",
        )
        return True

    def _launch(
        self,
        step: Step,
        instance: str,
        item: str | None,
        outputs: dict[str, dict[str, object]],
        key: StepKey | None,
        usual_ports: bool = True,
    ) -> None:
        attempt = self.attempts.get(instance, 0) + 1
        self.attempts[instance] = attempt
        self.launcher.fresh_outputs(instance)
        readiness = Readiness(step, choose_ports(step, usual_ports)) if isinstance(step, Service) else None
        try:
            ports = readiness.ports if readiness else None
            argv = step_command(step, self.values, outputs, ports, item, outcome=self.outcome)
            proc = self.launcher.start(step, instance, argv, attempt)
        except WorkflowError as exc:  # a reference it cannot fill, or a program that cannot start: one line
            self._set(instance, FAILED, message=exc.message, finished_at=now())
            return
        self.running[instance] = _Running(
            step, instance, proc, time.monotonic(), attempt, key, item, outputs, readiness
        )
        self._set(
            instance,
            RUNNING,
            started_at=now(),
            finished_at=None,
            message="",
            pid=proc.pid,
            pid_started=processes.started_at(proc.pid),
            attempts=attempt,
            **({"addresses": readiness.addresses()} if readiness else {}),
        )

    # -- watch ---------------------------------------------------------------------------------
    def _poll(self) -> bool:
        """Handle steps that ended, timed out or became ready; True if any left the running set."""
        before = len(self.running)
        for instance, run in list(self.running.items()):
            code = run.proc.poll()
            if code is None and run.step.timeout and time.monotonic() - run.started > run.step.timeout:
                processes.stop_group(run.proc.pid, None)
                run.proc.wait()
                del self.running[instance]
                self._failed(run, f"timed out after {run.step.timeout:g} s", retryable=True)
            elif run.readiness is not None and code is None:
                self._check_service(run)
            elif code is not None:
                del self.running[instance]
                self._finished(run, code)
        return len(self.running) < before

    def _check_service(self, run: _Running) -> None:
        assert run.readiness is not None and isinstance(run.step, Service)
        written = plan.read_outputs(self.layout.outputs_dir(self.name, run.instance))
        if run.readiness.wrote_outputs(written) and run.readiness.probe():
            del self.running[run.instance]
            outputs = {**run.readiness.urls(), **written}
            self.outputs[run.instance] = outputs
            self._set(run.instance, SUCCEEDED, outputs=outputs, finished_at=now(), message="service running")
        elif time.monotonic() - run.started > run.step.ready_timeout:
            del self.running[run.instance]
            processes.stop_group(run.proc.pid, None)
            self._set(
                run.instance,
                FAILED,
                finished_at=now(),
                message=f"service not ready after {run.step.ready_timeout:.0f} s: see "
                f"`trainflow logs {self.name} --step {run.instance}`",
            )

    def _finished(self, run: _Running, code: int) -> None:
        if code == 0 and not run.step.service:
            outputs = plan.read_outputs(self.layout.outputs_dir(self.name, run.instance))
            outputs.update(plan.artifact_digests(run.step, outputs, self.keys.memo))
            self.outputs[run.instance] = outputs
            self._set(run.instance, SUCCEEDED, outputs=outputs, finished_at=now(), pid=None)
            if run.key is not None:  # files it named are read again: it may have written them
                key = self.keys.after_run(run.key).value
                self.state.remember(key, self.name, run.instance, outputs)
                self.keys.record(run.step.name, run.instance, self.plan.instances[run.step.name], key)
            return
        if run.readiness is not None and run.readiness.lost_a_port():  # another process bound it first: not a fault
            log.info("%s: a usual port was taken meanwhile; starting it again on free ports", run.instance)
            self.attempts[run.instance] -= 1
            self._launch(run.step, run.instance, run.item, run.inputs, run.key, usual_ports=False)
            return
        reason = self.layout.last_error(self.name, run.instance) or f"exited with code {code}"
        if run.step.service:
            reason = f"service exited before it was ready: {reason}"
        self._failed(run, reason, retryable=code < 0 or code >= 128 or run.step.retry_on == "any")

    def _failed(self, run: _Running, reason: str, retryable: bool) -> None:
        step = run.step
        if retryable and run.attempt <= step.retries and not self.stopping:
            delay = step.backoff * 2 ** (run.attempt - 1)
            log.warning("%s failed (%s); retrying in %.1f s", run.instance, reason, delay)
            self.not_before[run.instance] = time.monotonic() + delay
            self._set(run.instance, PENDING, message=f"retrying in {delay:g} s: {reason}", pid=None)
            return
        said = reason if run.attempt == 1 else f"after {run.attempt} attempts: {reason}"  # their log shows each once
        self._set(run.instance, FAILED, finished_at=now(), message=said, pid=None)

    def _stop_running(self, why: str) -> None:
        for instance, run in list(self.running.items()):
            processes.stop_group(run.proc.pid, None)
            run.proc.wait()
            self._set(instance, FAILED, finished_at=now(), message=f"stopped: {why}", pid=None)
        self.running.clear()

    def _end_steps(self) -> ending.Outcome:
        """Close the run's steps (those that never started are Omitted) and say what they came to."""
        failed = [n for n, s in self.status.items() if s == FAILED and n not in self.exits]
        for name, status in self.status.items():
            if status in (PENDING, RUNNING) and name not in self.exits:
                self._set(name, OMITTED, message="workflow ended first")
        ended = ending.outcome(self.state, self.name, failed, self.stopping)
        if failed and not self.stopping:
            ending.settle_services(self.state, self.name, self.pipeline, self.status, self.plan.instances)
        return ended

    def _finish(self, ended: ending.Outcome) -> str:
        for name in self.exits:
            if self.status[name] in (PENDING, RUNNING):
                self._set(name, OMITTED, message="workflow ended first")
        self.on_end(ended.status, self.stopping)  # its MLflow run ends first: `--wait` returns with it ended
        self.state.update_workflow(self.name, status=ended.status, finished_at=now(), message=ended.message)
        return ended.status


def _package_of(python_path: list[str], home: Path) -> Path | None:
    """The unpacked code package a run submitted with --code-package imports from (packing code loaded only then)."""
    if not python_path:
        return None
    from trainflow.workflows.code_packages import unpacked_among

    return unpacked_among(python_path, home)


def run_workflow(home: Path, name: str) -> int:
    """Entry point of the runner process; exit code 0 if the workflow succeeded."""
    layout = Layout(home)
    lock = RunnerLock(layout.runner_lock(name))
    handed = os.environ.pop(LOCK_FD_ENV, "")
    if not (lock.adopt(int(handed)) if handed.isdigit() else lock.acquire()):
        raise WorkflowError(f"workflow {name} already has a runner (or was deleted): this one exits")
    # The lock stays held until this process is gone, so no two runner processes of a workflow ever overlap.
    state = StateStore(layout.db)
    with state.held(), ending.tracked(layout.workflow_dir(name), state) as track:  # one connection: see ...local.state
        executor = Executor(layout, name, state)
        executor.on_end = track
        status = executor.run()
    return 0 if status == SUCCEEDED else 1
