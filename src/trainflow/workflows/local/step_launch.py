"""How the local runner starts one step instance's process: its outputs folder, environment, folder and log.

With a code package (`trainflow submit --code-package`), a step's own program (`python train.py`) starts in the
package's unpacked folder, as `trainflow step run-command` starts it on a cluster (see `commands.package_folder`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trainflow.pipelines.artifacts import ENV as ARTIFACTS_ENV
from trainflow.pipelines.notify import RUN_BACKEND_ENV
from trainflow.pipelines.steps import Step
from trainflow.progress import ENV as PROGRESS_ENV
from trainflow.storage import join_url
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.local import processes
from trainflow.workflows.local.commands import package_folder
from trainflow.workflows.local.layout import ATTEMPT_HEADER, Layout


@dataclass(frozen=True)
class Launcher:
    """Starts the step processes of one workflow (`workflow` recorded under `layout`)."""

    layout: Layout
    workflow: str
    artifacts_base: str
    python_path: Sequence[str]
    code: Path | None = None  # the run's unpacked code package, if it has one

    def fresh_outputs(self, instance: str) -> Path:
        """The instance's `$TRAINFLOW_OUTPUTS` folder, emptied: an attempt never reads an earlier one's outputs."""
        out_dir = self.layout.outputs_dir(self.workflow, instance)
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True, exist_ok=True)
        return out_dir

    def start(self, step: Step, instance: str, command: Sequence[str], attempt: int) -> subprocess.Popen[bytes]:
        """Start `command` in its own process group, its output appended to the instance's log.

        WorkflowError, in one line, if it cannot start (no such program, the package's folder gone).
        """
        folder = package_folder(step, command, self.code)
        if folder is not None and not folder.is_dir():
            raise WorkflowError(f"the code package's folder {folder} is gone: submit the run again with --code-package")
        argv = processes.trainflow_argv(command)
        log_file = self.layout.step_log(self.workflow, instance)
        with open(log_file, "ab") as f:
            f.write(f"{ATTEMPT_HEADER}{attempt}: {' '.join(argv)}\n".encode())
        out_dir = self.layout.outputs_dir(self.workflow, instance)
        try:
            return processes.start(argv, log_file, env=self.env(instance, out_dir), cwd=folder)
        except OSError as exc:
            raise WorkflowError(f"cannot start {argv[0]}: {exc.strerror}") from None

    def env(self, instance: str, out_dir: Path) -> dict[str, str]:
        """The step's environment: ours, with where it writes outputs, progress and artifacts, and its import path."""
        env = {
            **os.environ,
            "TRAINFLOW_OUTPUTS": f"{out_dir}/",
            PROGRESS_ENV: str(self.layout.progress_file(self.workflow, instance)),
            ARTIFACTS_ENV: join_url(self.artifacts_base, self.workflow, instance),
            RUN_BACKEND_ENV: "local",
        }
        if self.python_path:
            env["PYTHONPATH"] = os.pathsep.join([*self.python_path, *filter(None, [env.get("PYTHONPATH")])])
        return env
