"""The detached process that runs one workflow's steps: `trainflow workflow-runner NAME`.

It launches every step whose dependencies succeeded as `trainflow step ...` in its own process
group, records pids, outputs and statuses in SQLite, retries transient failures (exit >= 128), and
on the way out stops whatever non-service step is still running. Services (TensorBoard, the model
server) are left running once ready: they outlive the workflow, as in the example's exit handler.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trainflow.workflows.backend import FAILED, OMITTED, PENDING, RUNNING, SKIPPED, SUCCEEDED
from trainflow.workflows.commands import step_command
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.local import processes
from trainflow.workflows.local.layout import Layout
from trainflow.workflows.local.runner_lock import LOCK_FD_ENV, RunnerLock
from trainflow.workflows.spec import PIPELINES, Pipeline, Step
from trainflow.workflows.state import StateStore, now

log = logging.getLogger(__name__)
SERVICE_READY_TIMEOUT = 180.0
_POLL = 0.005  # between checks of running steps: the runner's share of a step's latency


@dataclass
class _Running:
    step: Step
    proc: subprocess.Popen[bytes]
    started: float
    attempt: int


class Executor:
    """Runs the pending steps of one recorded workflow to completion."""

    def __init__(self, layout: Layout, name: str, pipelines: Mapping[str, Pipeline] = PIPELINES) -> None:
        self.layout = layout
        self.state = StateStore(layout.db)
        self.name = name
        info = self.state.get(name)
        self.pipeline = pipelines[info.pipeline]
        self.values = info.params
        self.first_started = info.started_at  # a retry continues the workflow: its duration runs from the first start
        # Only the holder of the runner lock runs steps, so a step another runner left Running is not running.
        self.status = {s.name: PENDING if s.status == RUNNING else s.status for s in info.steps}
        self.outputs = {s.name: s.outputs for s in info.steps if s.status == SUCCEEDED}
        self.attempts: dict[str, int] = {}
        self.running: dict[str, _Running] = {}
        self.stopping = False

    def run(self) -> str:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        self.state.update_workflow(self.name, status=RUNNING, started_at=self.first_started or now(), finished_at=None,
                                   message="", runner_pid=os.getpid(), runner_started=processes.started_at(os.getpid()))
        try:
            while not self.stopping and (self._launch_ready() or self.running):
                self._poll()
                time.sleep(_POLL)
        finally:
            self._stop_running("stopped" if self.stopping else "workflow ended")
        return self._finish()

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _set(self, step: str, status: str, **fields: object) -> None:
        self.status[step] = status
        self.state.update_step(self.name, step, status=status, **fields)

    def _launch_ready(self) -> bool:
        """Start every step that can start; True if any step can still make progress."""
        progress = False
        for step in self.pipeline.order():
            if self.status[step.name] != PENDING:
                continue
            deps = [self.status[d] for d in step.depends]
            if any(d in (FAILED, OMITTED) for d in deps):
                self._set(step.name, OMITTED, message="a step it depends on failed")
            elif step.when and self.values.get(step.when) != "true":
                self._set(step.name, SKIPPED, message=f"{step.when} is {self.values.get(step.when)}", finished_at=now())
            elif all(d in (SUCCEEDED, SKIPPED) for d in deps):
                self._launch(step)
                progress = True
            else:
                progress = True  # waits on a running step
        return progress

    def _launch(self, step: Step) -> None:
        attempt = self.attempts.get(step.name, 0) + 1
        self.attempts[step.name] = attempt
        outputs_file = self.layout.outputs_file(self.name, step.name)
        outputs_file.unlink(missing_ok=True)
        ports = {p.name: 0 for p in step.ports}  # services pick free ports and report them
        try:
            argv = step_command(step, self.values, self.outputs, ports)
        except WorkflowError as exc:
            self._set(step.name, FAILED, message=exc.message, finished_at=now())
            return
        argv = [*processes.trainflow_argv(argv), "--outputs", str(outputs_file)]
        log_file = self.layout.step_log(self.name, step.name)
        with open(log_file, "ab") as f:
            f.write(f"--- attempt {attempt}: {' '.join(argv[1:])}\n".encode())
        proc = processes.start(argv, log_file)
        self.running[step.name] = _Running(step, proc, time.monotonic(), attempt)
        self._set(step.name, RUNNING, started_at=now(), finished_at=None, message="", pid=proc.pid,
                  pid_started=processes.started_at(proc.pid), attempts=attempt)

    def _poll(self) -> None:
        for name, run in list(self.running.items()):
            code = run.proc.poll()
            if run.step.service and code is None:
                self._check_service(run)
            elif code is not None:
                del self.running[name]
                self._finished(run, code)

    def _check_service(self, run: _Running) -> None:
        outputs = self._read_outputs(run.step.name)
        if outputs is not None:
            del self.running[run.step.name]
            self.outputs[run.step.name] = outputs
            self._set(run.step.name, SUCCEEDED, outputs=outputs, finished_at=now(), message="service running")
        elif time.monotonic() - run.started > SERVICE_READY_TIMEOUT:
            del self.running[run.step.name]
            processes.stop_group(run.proc.pid, None)
            self._set(run.step.name, FAILED, finished_at=now(),
                      message=f"service not ready after {SERVICE_READY_TIMEOUT:.0f} s: see `trainflow logs {self.name} --step {run.step.name}`")

    def _finished(self, run: _Running, code: int) -> None:
        step = run.step
        if code == 0 and not step.service:
            outputs = self._read_outputs(step.name) or {}
            self.outputs[step.name] = outputs
            self._set(step.name, SUCCEEDED, outputs=outputs, finished_at=now(), pid=None)
            return
        transient = code < 0 or code >= 128
        if transient and run.attempt <= step.retries and not self.stopping:
            log.warning("%s exited with %s (transient); retrying", step.name, code)
            time.sleep(min(2.0 ** run.attempt, 10.0))
            self._launch(step)
            return
        reason = self.layout.last_error(self.name, step.name) or f"exited with code {code}"
        if step.service:
            reason = f"service exited before it was ready: {reason}"
        self._set(step.name, FAILED, finished_at=now(), message=reason, pid=None)

    def _read_outputs(self, step: str) -> dict[str, object] | None:
        try:
            return json.loads(self.layout.outputs_file(self.name, step).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _stop_running(self, why: str) -> None:
        for name, run in list(self.running.items()):
            processes.stop_group(run.proc.pid, None)
            run.proc.wait()
            self._set(name, FAILED, finished_at=now(), message=why, pid=None)
        self.running.clear()

    def _finish(self) -> str:
        failed = [n for n, s in self.status.items() if s == FAILED]
        for name, status in self.status.items():
            if status in (PENDING, RUNNING):
                self._set(name, OMITTED, message="workflow ended first")
        if self.stopping:
            status, message = FAILED, "stopped by user"
        elif failed:
            info = self.state.get(self.name)
            first = next(s for s in info.steps if s.name == failed[0])
            status, message = FAILED, f"step {first.name} failed: {first.message}"
        else:
            status, message = SUCCEEDED, ""
        self.state.update_workflow(self.name, status=status, finished_at=now(), message=message)
        return status


def run_workflow(home: Path, name: str) -> int:
    """Entry point of the runner process; exit code 0 if the workflow succeeded."""
    layout = Layout(home)
    lock = RunnerLock(layout.runner_lock(name))
    handed = os.environ.pop(LOCK_FD_ENV, "")
    if not (lock.adopt(int(handed)) if handed.isdigit() else lock.acquire()):
        raise WorkflowError(f"workflow {name} already has a runner (or was deleted): this one exits")
    # The lock stays held until this process is gone, so no two runner processes of a workflow ever overlap.
    status = Executor(layout, name).run()
    return 0 if status == SUCCEEDED else 1


