"""The `trainflow step ...` programs a step can run, by name: what the spec's checks accept.

A step's argv names a program (`trainflow step train-model ...`); the CLI's `trainflow step` group
gives each of these names a command (a test holds the two equal), so a pipeline cannot name a
program the CLI does not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from trainflow.pipelines.errors import PipelineError

if TYPE_CHECKING:  # every `trainflow` command reads the table below: it must not import (and compile) the refs
    from trainflow.pipelines.refs import Arg

STEP = ("trainflow", "step")

# What `trainflow step NAME` runs; the CLI maps each name to its command (trainflow.cli.step_programs).
STEP_PROGRAMS = (
    "download-dataset",
    "get-workflow-info",
    "tensorboard",
    "train-model",
    "export-model",
    "serve-model",
    "call",
    "train-function",
    "tune",
    "tune-result",
    "notify",
    "mlflow-end-run",  # a compiled workflow's exit handler, with tracking on
    "run-command",  # a compiled workflow's own program (a Command step's argv) run from its code package
)


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
