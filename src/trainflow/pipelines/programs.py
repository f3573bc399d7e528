"""The `trainflow step ...` programs a step can run: one table, read by the spec's checks and by the CLI.

A step's argv names a program (`trainflow step train-model ...`); the CLI's `trainflow step` group
is built from this table, so a pipeline cannot name a program the CLI does not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from trainflow.pipelines.errors import PipelineError

if TYPE_CHECKING:  # every `trainflow` command reads the table below: it must not import (and compile) the refs
    from trainflow.pipelines.refs import Arg

STEP = ("trainflow", "step")

# program name -> the click command that runs it (module:attribute, imported only when it runs)
STEP_PROGRAMS: dict[str, str] = {
    "download-dataset": "trainflow.cli.data:download_dataset_step",
    "get-workflow-info": "trainflow.cli.steps:get_workflow_info_step",
    "tensorboard": "trainflow.cli.steps:tensorboard_step",
    "train-model": "trainflow.cli.train:train_model_step",
    "export-model": "trainflow.cli.export:export_model_step",
    "serve-model": "trainflow.cli.serve:serve_model_step",
    "call": "trainflow.cli.call:call_step",
    "train-function": "trainflow.cli.call:train_function_step",
}


def trainflow_step(program: str, *args: Arg) -> tuple[Arg, ...]:
    """The argv `trainflow step PROGRAM ARGS...`; PipelineError for a program the CLI does not have."""
    check_program((*STEP, program))
    return (*STEP, program, *args)


def check_program(argv: Sequence[Arg]) -> None:
    """Refuse `trainflow step X` for an X that is not a step program."""
    if tuple(argv[:2]) != STEP:
        return
    program = argv[2] if len(argv) > 2 else ""
    if program not in STEP_PROGRAMS:
        raise PipelineError(
            f"'trainflow step {program}' is not a step program: use one of {', '.join(sorted(STEP_PROGRAMS))}"
        )
