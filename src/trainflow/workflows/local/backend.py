"""The local backend: workflows recorded in SQLite, each run by a detached runner process."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from trainflow.pipelines import Pipeline, PipelineError
from trainflow.pipelines.loading import check_functions
from trainflow.pipelines.serial import to_dict
from trainflow.progress import read_progress
from trainflow.workflows.backend import (
    FAILED,
    FINISHED,
    OMITTED,
    PENDING,
    RUNNING,
    SUCCEEDED,
    StepInfo,
    WorkflowInfo,
)
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.local import plan, processes
from trainflow.workflows.local.executor import load_pipeline
from trainflow.workflows.local.layout import Layout
from trainflow.workflows.params import inherited_values, resolve_params
from trainflow.workflows.state import StateStore, now

_ACTIVE = (PENDING, RUNNING)


def workflow_name(pipeline: Pipeline, values: Mapping[str, str]) -> str:
    """The run's name: its name parameter's value, or the pipeline's name plus a random suffix."""
    if pipeline.name_param is None:
        return f"{pipeline.name}-{secrets.token_hex(3)}"
    return f"{values[pipeline.name_param]}{pipeline.name_suffix}"


class LocalBackend:
    """Runs workflows on this machine; state and logs under `$TRAINFLOW_HOME`."""

    name = "local"

    def __init__(self, home: Path) -> None:
        self.layout = Layout(home)
        self.state = StateStore(self.layout.db)

    # -- submit --------------------------------------------------------------------------------
    def submit(self, pipeline: Pipeline, values: Mapping[str, str], no_cache: bool = False,
               python_path: list[str] | None = None) -> WorkflowInfo:
        """Validate, record and start a workflow; returns at once (the runner works in the background).

        `python_path`: folders the steps' functions import from (a pipeline file's folder); `no_cache`:
        run every step even when an earlier run's outputs could be reused.
        """
        try:
            pipeline.validate()
            check_functions(pipeline, python_path)
        except PipelineError as exc:
            raise WorkflowError(exc.message) from None
        values = self._complete(pipeline, resolve_params(pipeline, values), values)
        steps = [StepInfo(i, service=s.service) for s in pipeline.steps for i in plan.instance_names(s, values)]
        info = WorkflowInfo(name=workflow_name(pipeline, values), pipeline=pipeline.name, status=PENDING, params=values,
                            created_at=now(), steps=steps)
        spec = {"pipeline": to_dict(pipeline), "python_path": [str(Path(p).resolve()) for p in python_path or []]}
        self.state.create(info, spec, no_cache)
        self._spawn_runner(info.name)
        return self.get(info.name)

    def _complete(self, pipeline: Pipeline, values: dict[str, str], given: Mapping[str, str]) -> dict[str, str]:
        """Fill the local defaults that depend on this machine or on another workflow."""
        from trainflow.datasets import DEFAULT_MNIST_URL

        if pipeline.inherit_from and values.get(pipeline.inherit_from):
            values = inherited_values(pipeline, values, given, self.get(values[pipeline.inherit_from]).params)
        if "s3-data-url" in values and not values["s3-data-url"]:
            values["s3-data-url"] = DEFAULT_MNIST_URL
        if "s3-train-base-url" in values and not values["s3-train-base-url"]:
            values["s3-train-base-url"] = str(self.layout.default_store)
        return values

    def _spawn_runner(self, name: str) -> None:
        log = self.layout.runner_log(name)
        argv = [sys.executable, "-m", "trainflow", "workflow-runner", name]
        proc = processes.start(argv, log, env={**os.environ, "TRAINFLOW_HOME": str(self.layout.home)})
        self.state.update_workflow(name, runner_pid=proc.pid, runner_started=processes.started_at(proc.pid))

    # -- read ----------------------------------------------------------------------------------
    def get(self, name: str) -> WorkflowInfo:
        info = self.state.get(name)
        if info.status in _ACTIVE:
            self._reconcile(info)
            info = self.state.get(name)
        pipeline, _, _ = load_pipeline(self.state, name, info.pipeline)
        instances = {s.name: plan.instance_names(s, info.params) for s in pipeline.steps}
        for step in pipeline.steps:
            for instance in instances[step.name]:
                found = info.step(instance)
                if found is not None:
                    found.depends = [i for d in step.upstream() for i in instances[d]]
        return info

    def list(self) -> list[WorkflowInfo]:
        return [self.get(n) for n in self.state.names()]

    def _reconcile(self, info: WorkflowInfo) -> None:
        """A workflow whose runner died (kill -9, reboot) is Failed, and its step processes stopped."""
        pid, started = self.state.runner(info.name)
        if processes.alive(pid, started):
            return
        time.sleep(0.2)  # the runner may be writing its final status right now
        if self.state.get(info.name).status not in _ACTIVE:
            return
        for step, spid, sstarted, service in self.state.step_processes(info.name):
            current = info.step(step)
            if current and current.status == RUNNING:
                processes.stop_group(spid, sstarted)
                self.state.update_step(info.name, step, status=FAILED, finished_at=now(), pid=None,
                                       message="interrupted: the runner died")
        self.state.update_workflow(
            info.name, status=FAILED, finished_at=now(),
            message=f"the runner process ({pid}) died; `trainflow retry {info.name}` resumes from the interrupted step",
        )

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

    def services(self) -> list[tuple[WorkflowInfo, StepInfo]]:
        """Running services: (workflow, step) for each live TensorBoard and model server."""
        found = []
        for info in self.list():
            live = {s for s, pid, started, service in self.state.step_processes(info.name)
                    if service and processes.alive(pid, started)}
            found += [(info, s) for s in info.steps if s.name in live and s.status == SUCCEEDED]
        return found

    # -- change --------------------------------------------------------------------------------
    def stop(self, name: str) -> WorkflowInfo:
        """Stop a running workflow: its running steps end, services already started stay."""
        info = self.get(name)
        if info.status not in _ACTIVE:
            raise WorkflowError(f"workflow {name} is {info.status}, not running")
        pid, started = self.state.runner(name)
        processes.stop_group(pid, started, grace=30)
        return self.get(name)

    def retry(self, name: str) -> WorkflowInfo:
        """Re-run a failed workflow from its failed steps, keeping the successful ones."""
        info = self.get(name)
        if info.status != FAILED:
            raise WorkflowError(f"workflow {name} is {info.status}: only a Failed workflow can be retried")
        live = {s for s, pid, started, service in self.state.step_processes(name) if processes.alive(pid, started)}
        for step in info.steps:
            dead_service = step.service and step.status == SUCCEEDED and step.name not in live
            if step.status in (FAILED, OMITTED, PENDING, RUNNING) or dead_service:
                self.state.update_step(name, step.name, status=PENDING, message="", started_at=None, finished_at=None)
        self.state.update_workflow(name, status=PENDING, message="", finished_at=None)
        self._spawn_runner(name)
        return self.get(name)

    def resubmit(self, name: str, new_name: str | None = None, no_cache: bool = False) -> WorkflowInfo:
        """Run a workflow again under a new name; cacheable steps reuse this run's outputs unless `no_cache`."""
        info = self.get(name)
        pipeline, python_path, _ = load_pipeline(self.state, name, info.pipeline)
        values = dict(info.params)
        if pipeline.name_param is not None:
            values[pipeline.name_param] = new_name or f"{values[pipeline.name_param][:56]}-{secrets.token_hex(3)}"
        elif new_name:
            raise WorkflowError(f"{pipeline.name} names its runs itself: resubmit without --job-name")
        return self.submit(pipeline, values, no_cache, python_path)

    def progress(self, name: str, step: str) -> list[dict[str, Any]]:
        """The progress events step `step` of workflow `name` reported, oldest first."""
        return read_progress(self.layout.progress_file(name, step))

    def watchable(self) -> bool:
        return True

    def delete(self, name: str) -> None:
        """Stop everything a workflow runs, services included, and forget it (its models stay)."""
        self.state.get(name)
        pid, started = self.state.runner(name)
        processes.stop_group(pid, started)
        for _, spid, sstarted, _ in self.state.step_processes(name):
            processes.stop_group(spid, sstarted)
        self.state.delete(name)
        shutil.rmtree(self.layout.workflow_dir(name), ignore_errors=True)

    def find_service(self, name: str, step: str) -> StepInfo:
        for info, service in self.services():
            if info.name == name and service.name == step:
                return service
        raise WorkflowError(f"workflow {name} has no running {step}: see `trainflow get {name}`")


