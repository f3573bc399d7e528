"""Where the local backend keeps things under `$TRAINFLOW_HOME`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ATTEMPT_HEADER = "--- attempt "  # how the runner starts each attempt's part of a step's log


@dataclass(frozen=True)
class Layout:
    home: Path

    @property
    def db(self) -> Path:
        return self.home / "trainflow.db"

    def workflow_dir(self, name: str) -> Path:
        return self.home / "workflows" / name

    def step_log(self, workflow: str, step: str) -> Path:
        path = self.workflow_dir(workflow) / f"{step}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def runner_log(self, workflow: str) -> Path:
        return self.workflow_dir(workflow) / "runner.log"

    def runner_lock(self, workflow: str) -> Path:
        return self.workflow_dir(workflow) / "runner.lock"

    def outputs_dir(self, workflow: str, step: str) -> Path:
        """Where a step writes its outputs ($TRAINFLOW_OUTPUTS): one file per key, or outputs.json."""
        return self.workflow_dir(workflow) / "outputs" / step

    def progress_file(self, workflow: str, step: str) -> Path:
        """Where a step appends its progress events ($TRAINFLOW_PROGRESS)."""
        return self.workflow_dir(workflow) / f"{step}.progress.jsonl"

    @property
    def store_root(self) -> Path:
        """This machine's object store: a parameter declaring `local_store` left empty gets a folder of it."""
        return self.home / "store"

    @property
    def default_artifacts(self) -> Path:
        """Where steps publish artifacts when the pipeline names no artifacts_url."""
        return self.home / "store" / "artifacts"

    def last_error(self, workflow: str, step: str) -> str:
        """The line of a step's last attempt's log that best says why it failed: its `error:` line, else the last one."""
        try:
            text = self.step_log(workflow, step).read_text(errors="replace")
            lines = [line.strip() for line in text.splitlines() if line.strip()]
        except FileNotFoundError:
            return ""
        headers = [i for i, line in enumerate(lines) if line.startswith(ATTEMPT_HEADER)]  # the runner's lines
        lines = lines[headers[-1] + 1 :] if headers else lines  # what the last attempt itself wrote
        errors = [line for line in lines if line.startswith("error: ")]
        return (errors[-1][len("error: ") :] if errors else lines[-1] if lines else "")[:500]
